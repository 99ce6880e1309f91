package registry_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/caddy-dcr/caddy-dcr/registry"
	"github.com/caddy-dcr/caddy-dcr/storage"
)

// An authorization server written in Go (the site behind Caddy) reads the
// registered clients from the same Redis, under the key prefix of the
// Caddyfile's storage block ("dcr:" by default), and checks a client's
// credentials at its token endpoint.
func Example_authorizationServer() {
	pool := storage.NewRedisPool(storage.RedisOptions{Addrs: []string{"localhost:6379"}})
	defer pool.Destruct()
	reg := registry.New(pool.Store("dcr:"))

	id, secret := "client id from the request", "client secret from the request"
	c, err := reg.Get(context.Background(), id) // a use: pushes an idle expiry back
	switch {
	case errors.Is(err, registry.ErrNotFound):
		fmt.Println("invalid_client")
		return
	case err != nil:
		fmt.Println("temporarily_unavailable:", err)
		return
	}
	if !c.Confidential() || !registry.Verify(c.SecretHash, secret) || c.SecretExpired(time.Now()) {
		fmt.Println("invalid_client")
		return
	}
	fmt.Println("authenticated; redirect URIs:", c.RedirectURIs, "grant types:", c.GrantTypes)
}
