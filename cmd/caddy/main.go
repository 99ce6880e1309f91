// Command caddy is Caddy with the standard modules and caddy-dcr: the
// binary `make run` and the end-to-end tests build.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/caddy-dcr/caddy-dcr"
)

func main() {
	caddycmd.Main()
}
