// Command iamsdk registers clients with the plugin's Huawei Cloud IAM
// Identity Center API through Huawei's own Go SDK
// (huaweicloud-sdk-go-v3, services/identitycenteroidc/v1), unmodified, the
// way a program written for Huawei Cloud would, and checks what the SDK
// makes of the answers. It is its own module so that the SDK stays out of
// the plugin's go.mod; iam_e2e_test.go (TestHuaweiSDK) builds and runs it.
//
// Usage: iamsdk <site URL, e.g. http://127.0.0.1:8080>
//
// It prints one line per step and exits 1 on the first failure.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"time"

	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/config"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/core/sdkerr"
	iic "github.com/huaweicloud/huaweicloud-sdk-go-v3/services/identitycenteroidc/v1"
	"github.com/huaweicloud/huaweicloud-sdk-go-v3/services/identitycenteroidc/v1/model"
)

// ninetyDays is the default secret lifetime of the API (seed 004's example).
const ninetyDays = 90 * 24 * 3600

var requestID = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

type checker struct{ failed bool }

func (c *checker) check(ok bool, format string, args ...any) {
	if !ok {
		c.failed = true
		fmt.Printf("FAIL: "+format+"\n", args...)
	}
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: iamsdk <site URL>")
		os.Exit(2)
	}
	base := os.Args[1]
	hc := config.DefaultHttpConfig().WithTimeout(10 * time.Second).WithRetries(0)
	hcClient, err := iic.IdentityCenterOIDCClientBuilder().
		WithEndpoints([]string{base}).
		WithCredential(iic.NewIdentityCenterOIDCCredentialsBuilder().Build()).
		WithHttpConfig(hc).
		SafeBuild()
	if err != nil {
		fmt.Println("FAIL: building the SDK client:", err)
		os.Exit(1)
	}
	client := iic.NewIdentityCenterOIDCClient(hcClient)
	c := &checker{}
	registerDocExample(c, client, base)
	registerWithoutScopes(c, client)
	refused(c, client)
	if c.failed {
		os.Exit(1)
	}
	fmt.Println("ok")
}

// docRequest is the reference's example request (seed 004), built with the
// SDK's own enum constants.
func docRequest() *model.RegisterClientReqBody {
	scopes := []string{"openid"}
	grants := model.GetRegisterClientReqBodyGrantTypesEnum()
	return &model.RegisterClientReqBody{
		ClientName:              "exampleClient",
		ClientType:              model.GetRegisterClientReqBodyClientTypeEnum().PUBLIC,
		TokenEndpointAuthMethod: model.GetRegisterClientReqBodyTokenEndpointAuthMethodEnum().CLIENT_SECRET_POST,
		Scopes:                  &scopes,
		GrantTypes:              []model.RegisterClientReqBodyGrantTypes{grants.AUTHORIZATION_CODE, grants.URNIETFPARAMSOAUTHGRANT_TYPEDEVICE_CODE},
		ResponseTypes:           []model.RegisterClientReqBodyResponseTypes{model.GetRegisterClientReqBodyResponseTypesEnum().CODE},
	}
}

func registerDocExample(c *checker, client *iic.IdentityCenterOIDCClient, base string) {
	before := time.Now().Unix()
	resp, err := client.RegisterClient(&model.RegisterClientRequest{Body: docRequest()})
	if err != nil || resp == nil || resp.ClientInfo == nil {
		c.check(false, "RegisterClient (seed 004 example): %v, %v", resp, err)
		return
	}
	fmt.Println("RegisterClient (seed 004 example):", resp)
	info := resp.ClientInfo
	c.check(resp.HttpStatusCode == 200, "status %d, want 200", resp.HttpStatusCode)
	c.check(len(info.ClientId) == 22, "client_id %q: want 22 characters", info.ClientId)
	c.check(len(info.ClientSecret) == 43, "client_secret: %d characters, want 43", len(info.ClientSecret))
	now := time.Now().Unix()
	c.check(info.ClientIdIssuedAt >= before-1 && info.ClientIdIssuedAt <= now+1,
		"client_id_issued_at %d is not about now (%d)", info.ClientIdIssuedAt, now)
	c.check(info.ClientSecretExpiresAt-info.ClientIdIssuedAt == ninetyDays,
		"client_secret_expires_at - client_id_issued_at = %d, want 90 days", info.ClientSecretExpiresAt-info.ClientIdIssuedAt)
	c.check(info.AuthorizationEndpoint == base+"/v1/authorize", "authorization_endpoint %q", info.AuthorizationEndpoint)
	c.check(info.TokenEndpoint == base+"/v1/tokens", "token_endpoint %q", info.TokenEndpoint)
	c.check(info.Scopes != nil && slices.Equal(*info.Scopes, []string{"openid"}), "scopes %v, want [openid]", info.Scopes)
}

func registerWithoutScopes(c *checker, client *iic.IdentityCenterOIDCClient) {
	body := docRequest()
	body.Scopes = nil
	resp, err := client.RegisterClient(&model.RegisterClientRequest{Body: body})
	if err != nil || resp == nil || resp.ClientInfo == nil {
		c.check(false, "RegisterClient without scopes: %v, %v", resp, err)
		return
	}
	fmt.Println("RegisterClient without scopes:", resp)
	if s := resp.ClientInfo.Scopes; s != nil {
		c.check(false, "scopes %q echoed though none were sent", *s)
	}
}

// refused sends requests the API must refuse and checks that the SDK reads
// Huawei's error format: the code, the message and the request id.
func refused(c *checker, client *iic.IdentityCenterOIDCClient) {
	var confidential model.RegisterClientReqBodyClientType
	if err := json.Unmarshal([]byte(`"confidential"`), &confidential); err != nil {
		c.check(false, "client type: %v", err)
		return
	}
	cases := []struct {
		name string
		edit func(*model.RegisterClientReqBody)
	}{
		{"empty client_name", func(b *model.RegisterClientReqBody) { b.ClientName = "" }},
		{"client_type confidential", func(b *model.RegisterClientReqBody) { b.ClientType = confidential }},
		{"no grant_types", func(b *model.RegisterClientReqBody) { b.GrantTypes = []model.RegisterClientReqBodyGrantTypes{} }},
	}
	for _, tc := range cases {
		body := docRequest()
		tc.edit(body)
		resp, err := client.RegisterClient(&model.RegisterClientRequest{Body: body})
		var se *sdkerr.ServiceResponseError
		if !errors.As(err, &se) {
			c.check(false, "%s: want a ServiceResponseError, got %v, %T %v", tc.name, resp, err, err)
			continue
		}
		fmt.Printf("%s: status %d, %s %q, request id %s\n", tc.name, se.StatusCode, se.ErrorCode, se.ErrorMessage, se.RequestId)
		c.check(se.StatusCode == 400, "%s: status %d, want 400", tc.name, se.StatusCode)
		c.check(se.ErrorCode == "IIC.400", "%s: error_code %q, want IIC.400", tc.name, se.ErrorCode)
		c.check(regexp.MustCompile(`^Bad Request: .+\.$`).MatchString(se.ErrorMessage), "%s: error_msg %q", tc.name, se.ErrorMessage)
		c.check(requestID.MatchString(se.RequestId), "%s: request id %q (X-Request-Id)", tc.name, se.RequestId)
	}
}
