package caddydcr

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/caddyauth"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// This file tests the Caddyfile surface: UnmarshalCaddyfile on its own
// (tables over caddyfile.NewTestDispenser), whole Caddyfiles adapted to JSON
// (golden files in testdata/caddyfile_adapt), and the Caddyfiles the
// repository ships (Caddyfile.example, bench/Caddyfile). None of it starts
// a server.

func cfDuration(s string) *Duration {
	d, err := caddy.ParseDuration(s)
	if err != nil {
		panic(err)
	}
	cd := Duration(d)
	return &cd
}

func cfInt(n int) *int { return &n }

// cfEveryInput and cfRFC7591Input (require_software_statement is for
// rfc7591 only, super_client and the like for kustvakt only) use every
// subdirective of the syntax in UnmarshalCaddyfile's godoc;
// TestUnmarshalCaddyfileSyntaxCovered keeps it that way.
const cfRFC7591Input = `client_registration rfc7591 {
	software_statement {
		issuer https://vendor.example {
			secret {env.VENDOR_HS256}
		}
	}
	require_software_statement
	advertise_registration on
}`

const cfEveryInput = `client_registration kustvakt {
	prefix /oauth
	issuer https://auth.example.com/oauth
	storage redis {
		address 10.0.0.1:6379 10.0.0.2:6379
		address 10.0.0.3:6379
		username dcr
		password {env.REDIS_PASSWORD}
		db 2
		master_name mymaster
		sentinel_username watcher
		sentinel_password {env.SENTINEL_PASSWORD}
		tls insecure_skip_verify {
			ca_file /etc/redis/ca.pem
			cert_file /etc/redis/client.pem
			key_file /etc/redis/client.key
			server_name redis.internal
		}
		key_prefix app:
		timeout 1500ms
		wait_replicas 2 700ms
	}
	user {http.request.header.Remote-User}
	secret_lifetime 720h
	authorization_endpoint https://auth.example.com/authorize
	token_endpoint https://auth.example.com/token
	super_client korap {env.SUPER_SECRET}
	super_client other-super {file./run/secrets/other}
	timezone Europe/Berlin
	admin_user alice bob
	admin_user carol
	admin_token {env.ADMIN_TOKEN}
	registration token
	initial_access_token {env.IAT_1} static-token
	initial_access_token {file./run/secrets/iat}
	software_statement {
		issuer https://vendor.example {
			key /etc/dcr/vendor.pem https://vendor.example/jwks.json
			key /etc/dcr/vendor-jwks.json
			secret {env.VENDOR_HS256}
			software_id app-1 app-2
		}
		issuer https://other.example {
			key /etc/dcr/other.pem
		}
	}
	allowed_redirect_hosts app.example *.apps.example
	max_redirect_uris 5
	require_same_host_uris
	allowed_grant_types authorization_code refresh_token
	allowed_response_types code
	allowed_auth_methods client_secret_basic private_key_jwt
	allowed_scopes openid profile
	allowed_scopes email
	default_scope openid profile
	rate_limit 30 10m
	max_clients 500
	max_clients_per_owner off
	client_lifetime 8760h
	idle_lifetime 90d
	cors https://app.example https://admin.example http://localhost:3000 http://[::1]:5173
}`

func TestUnmarshalCaddyfile(t *testing.T) {
	for _, tc := range []struct {
		name  string
		input string
		want  Handler
	}{
		{name: "bare", input: `client_registration`, want: Handler{}},
		{name: "empty block", input: "client_registration {\n}", want: Handler{}},
		{name: "api argument", input: `client_registration mediagoblin`, want: Handler{API: "mediagoblin"}},
		{name: "rfc7591", input: `client_registration rfc7591`, want: Handler{API: "rfc7591"}},
		{name: "kustvakt", input: `client_registration kustvakt`, want: Handler{API: "kustvakt"}},
		{name: "iam", input: `client_registration iam`, want: Handler{API: "iam"}},
		{
			name:  "storage caddy",
			input: "client_registration {\n\tstorage caddy\n}",
			want:  Handler{Storage: &StorageConfig{Caddy: &CaddyStorageConfig{}}},
		},
		{
			name:  "every subdirective",
			input: cfEveryInput,
			want: Handler{
				API:    "kustvakt",
				Prefix: "/oauth",
				Issuer: "https://auth.example.com/oauth",
				User:   "{http.request.header.Remote-User}",
				Storage: &StorageConfig{Redis: &RedisConfig{
					Address:          []string{"10.0.0.1:6379", "10.0.0.2:6379", "10.0.0.3:6379"},
					Username:         "dcr",
					Password:         "{env.REDIS_PASSWORD}",
					DB:               2,
					MasterName:       "mymaster",
					SentinelUsername: "watcher",
					SentinelPassword: "{env.SENTINEL_PASSWORD}",
					TLS: &RedisTLS{
						InsecureSkipVerify: true,
						CAFile:             "/etc/redis/ca.pem",
						CertFile:           "/etc/redis/client.pem",
						KeyFile:            "/etc/redis/client.key",
						ServerName:         "redis.internal",
					},
					KeyPrefix:    "app:",
					Timeout:      *cfDuration("1500ms"),
					WaitReplicas: 2,
					WaitTimeout:  *cfDuration("700ms"),
				}},
				SecretLifetime:        cfDuration("720h"),
				AuthorizationEndpoint: "https://auth.example.com/authorize",
				TokenEndpoint:         "https://auth.example.com/token",
				SuperClients: []SuperClient{
					{ClientID: "korap", Secret: "{env.SUPER_SECRET}"},
					{ClientID: "other-super", Secret: "{file./run/secrets/other}"},
				},
				Timezone:            "Europe/Berlin",
				AdminUsers:          []string{"alice", "bob", "carol"},
				AdminToken:          "{env.ADMIN_TOKEN}",
				Registration:        "token",
				InitialAccessTokens: []string{"{env.IAT_1}", "static-token", "{file./run/secrets/iat}"},
				SoftwareStatement: &SoftwareStatementConfig{Issuers: []StatementIssuerConfig{
					{
						Issuer:      "https://vendor.example",
						Keys:        []string{"/etc/dcr/vendor.pem", "https://vendor.example/jwks.json", "/etc/dcr/vendor-jwks.json"},
						Secret:      "{env.VENDOR_HS256}",
						SoftwareIDs: []string{"app-1", "app-2"},
					},
					{Issuer: "https://other.example", Keys: []string{"/etc/dcr/other.pem"}},
				}},
				AllowedRedirectHosts: []string{"app.example", "*.apps.example"},
				MaxRedirectURIs:      5,
				RequireSameHostURIs:  true,
				AllowedGrantTypes:    []string{"authorization_code", "refresh_token"},
				AllowedResponseTypes: []string{"code"},
				AllowedAuthMethods:   []string{"client_secret_basic", "private_key_jwt"},
				AllowedScopes:        []string{"openid", "profile", "email"},
				DefaultScope:         "openid profile",
				RateLimit:            &RateLimitConfig{Count: 30, Window: *cfDuration("10m")},
				MaxClients:           cfInt(500),
				MaxClientsPerOwner:   cfInt(0),
				ClientLifetime:       *cfDuration("8760h"),
				IdleLifetime:         *cfDuration("2160h"),
				CORS:                 []string{"https://app.example", "https://admin.example", "http://localhost:3000", "http://[::1]:5173"},
			},
		},
		{
			name:  "require_software_statement",
			input: cfRFC7591Input,
			want: Handler{API: "rfc7591", RequireSoftwareStatement: true, AdvertiseRegistration: cfBool(true), SoftwareStatement: &SoftwareStatementConfig{
				Issuers: []StatementIssuerConfig{{Issuer: "https://vendor.example", Secret: "{env.VENDOR_HS256}"}},
			}},
		},
		{
			name:  "redis tls without options",
			input: "client_registration {\n\tstorage redis {\n\t\taddress r:6379\n\t\ttls\n\t}\n}",
			want:  Handler{Storage: &StorageConfig{Redis: &RedisConfig{Address: []string{"r:6379"}, TLS: &RedisTLS{}}}},
		},
		{
			name:  "redis tls block only",
			input: "client_registration {\n\tstorage redis {\n\t\taddress r:6379\n\t\ttls {\n\t\t\tca_file ca.pem\n\t\t}\n\t}\n}",
			want:  Handler{Storage: &StorageConfig{Redis: &RedisConfig{Address: []string{"r:6379"}, TLS: &RedisTLS{CAFile: "ca.pem"}}}},
		},
		{
			name:  "redis db 0 and days",
			input: "client_registration iam {\n\tstorage redis {\n\t\taddress r:6379\n\t\tdb 0\n\t}\n\tsecret_lifetime 90d\n}",
			want: Handler{API: "iam", SecretLifetime: cfDuration("2160h"),
				Storage: &StorageConfig{Redis: &RedisConfig{Address: []string{"r:6379"}}}},
		},
		{
			name:  "limits off",
			input: "client_registration {\n\trate_limit off\n\tmax_clients off\n\tmax_clients_per_owner off\n}",
			want:  Handler{RateLimit: &RateLimitConfig{}, MaxClients: cfInt(0), MaxClientsPerOwner: cfInt(0)},
		},
		{
			name:  "secret lifetime zero",
			input: "client_registration {\n\tsecret_lifetime 0s\n}",
			want:  Handler{SecretLifetime: cfDuration("0s")},
		},
		{
			name:  "redis key_prefix placeholder",
			input: "client_registration {\n\tstorage redis {\n\t\taddress {env.REDIS_ADDR}\n\t\tkey_prefix {env.DCR_PREFIX}:\n\t}\n}",
			want:  Handler{Storage: &StorageConfig{Redis: &RedisConfig{Address: []string{"{env.REDIS_ADDR}"}, KeyPrefix: "{env.DCR_PREFIX}:"}}},
		},
		{
			name:  "redis ipv6 address",
			input: "client_registration {\n\tstorage redis {\n\t\taddress [::1]:6379 :6380\n\t}\n}",
			want:  Handler{Storage: &StorageConfig{Redis: &RedisConfig{Address: []string{"[::1]:6379", ":6380"}}}},
		},
		{
			name:  "placeholders in URLs and user",
			input: "client_registration {\n\tissuer https://{http.request.host}/oauth\n\ttoken_endpoint {env.TOKEN_URL}\n\tuser {http.request.header.Remote-User}\n}",
			want:  Handler{Issuer: "https://{http.request.host}/oauth", TokenEndpoint: "{env.TOKEN_URL}", User: "{http.request.header.Remote-User}"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got Handler
			if err := got.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tc.input)); err != nil {
				t.Fatalf("UnmarshalCaddyfile: %v", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got  %s\nwant %s", cfJSON(t, got), cfJSON(t, tc.want))
			}
			// The Caddyfile adapter JSON-encodes the handler: only
			// exported fields survive, so the round trip must be lossless.
			var back Handler
			if err := json.Unmarshal([]byte(cfJSON(t, got)), &back); err != nil || !reflect.DeepEqual(back, got) {
				t.Fatalf("JSON round trip lost fields: %v\n%s", err, cfJSON(t, back))
			}
		})
	}
}

func TestUnmarshalCaddyfileErrors(t *testing.T) {
	redis := func(body string) string {
		return "client_registration {\n\tstorage redis {\n\t\taddress r:6379\n\t\t" + body + "\n\t}\n}"
	}
	for _, tc := range []struct {
		name, input, want string
	}{
		{"unknown subdirective", "client_registration {\n\tpath_prefix /x\n}", "unrecognized subdirective 'path_prefix'"},
		{"block after a flag", "client_registration {\n\trequire_same_host_uris {\n\t\tx\n\t}\n}", "require_same_host_uris takes no block"},
		{"block after a value", "client_registration {\n\tprefix /a {\n\t\tx\n\t}\n}", "prefix takes no block"},
		{"block in redis", redis("db 1 {\n\t\t\tx\n\t\t}"), "redis db takes no block"},
		{"URL and host:port", redis("address redis://r2:6379"), "storage redis: write every address as a redis:// URL or none, at Testfile:4"},
		{"URLs that differ", "client_registration {\n\tstorage redis {\n\t\taddress rediss://r1:6379 redis://r2:6379\n\t}\n}", "storage redis: the redis:// addresses differ in scheme, credentials or database, at Testfile:3"},
		{"extra argument after api", "client_registration iam extra", "wrong argument count"},
		{"extra argument on prefix", "client_registration {\n\tprefix /a /b\n}", "wrong argument count"},
		{"missing prefix argument", "client_registration {\n\tprefix\n}", "wrong argument count"},
		{"prefix twice", "client_registration {\n\tprefix /a\n\tprefix /b\n}", "prefix already specified"},
		{"issuer twice", "client_registration {\n\tissuer https://a\n\tissuer https://b\n}", "issuer already specified"},
		{"timezone twice", "client_registration kustvakt {\n\ttimezone UTC\n\ttimezone UTC\n}", "timezone already specified"},
		{"admin_token twice", "client_registration kustvakt {\n\tadmin_token a\n\tadmin_token b\n}", "admin_token already specified"},
		{"extra argument on endpoint", "client_registration {\n\ttoken_endpoint https://a https://b\n}", "wrong argument count"},
		{"duplicate storage", "client_registration {\n\tstorage caddy\n\tstorage caddy\n}", "storage already specified"},
		{"duplicate storage kinds", "client_registration {\n\tstorage redis {\n\t\taddress r:6379\n\t}\n\tstorage caddy\n}", "storage already specified"},
		{"storage without kind", "client_registration {\n\tstorage\n}", "wrong argument count"},
		{"unknown storage", "client_registration {\n\tstorage memcached\n}", `unknown storage "memcached"`},
		{"storage caddy argument", "client_registration {\n\tstorage caddy extra\n}", "wrong argument count"},
		{"storage caddy block", "client_registration {\n\tstorage caddy {\n\t\tpath /x\n\t}\n}", "storage caddy takes no options"},
		{"storage redis argument", "client_registration {\n\tstorage redis r:6379\n}", "wrong argument count"},
		{"bad duration", "client_registration {\n\tsecret_lifetime soon\n}", "invalid secret_lifetime 'soon'"},
		{"duration without argument", "client_registration {\n\tsecret_lifetime\n}", "wrong argument count"},
		{"duration extra argument", "client_registration {\n\tsecret_lifetime 1h 2h\n}", "wrong argument count"},
		{"secret_lifetime twice", "client_registration {\n\tsecret_lifetime 1h\n\tsecret_lifetime 2h\n}", "secret_lifetime already specified"},
		{"super_client one argument", "client_registration kustvakt {\n\tsuper_client id\n}", "super_client takes a client id and a secret"},
		{"super_client three arguments", "client_registration kustvakt {\n\tsuper_client id s x\n}", "super_client takes a client id and a secret"},
		{"admin_user without argument", "client_registration kustvakt {\n\tadmin_user\n}", "wrong argument count"},
		{"redis unknown subdirective", redis("addr r:6379"), "unrecognized redis subdirective 'addr'"},
		{"redis address without argument", redis("address"), "wrong argument count"},
		{"redis password twice", redis("password a\n\t\tpassword b"), "password already specified"},
		{"redis username extra", redis("username a b"), "wrong argument count"},
		{"redis key_prefix twice", redis("key_prefix a:\n\t\tkey_prefix b:"), "key_prefix already specified"},
		{"redis master_name missing", redis("master_name"), "wrong argument count"},
		{"sentinel_password without sentinel", redis("sentinel_password x"), "sentinel_username and sentinel_password need master_name"},
		{"bad db", redis("db two"), "invalid db 'two'"},
		{"negative db", redis("db -1"), "invalid db '-1'"},
		{"db extra argument", redis("db 1 2"), "wrong argument count"},
		{"bad redis timeout", redis("timeout fast"), "invalid timeout 'fast'"},
		{"redis timeout extra", redis("timeout 1s 2s"), "wrong argument count"},
		{"redis timeout zero", redis("timeout 0"), "invalid timeout '0': at least 1ms (leave timeout out for the default, 2s)"},
		{"redis address twice", redis("address r:1 R:1"), "addresses 2 and 3 are the same"},
		{"redis address twice, port written apart", redis("address q:6379 q:06379"), "addresses 2 and 3 are the same"},
		{"redis address twice, as URLs", redis("address redis://q redis://:pw@Q:6379"), "addresses 2 and 3 are the same"},
		{"redis address twice on two lines", redis("address r:1 s:1\n\t\taddress r:1"), "addresses 2 and 4 are the same"},
		{"wait_replicas missing", redis("wait_replicas"), "wrong argument count"},
		{"wait_replicas zero", redis("wait_replicas 0"), "invalid wait_replicas '0'"},
		{"wait_replicas not a number", redis("wait_replicas one"), "invalid wait_replicas 'one'"},
		{"wait_replicas bad timeout", redis("wait_replicas 1 soon"), "invalid wait_replicas timeout 'soon'"},
		{"wait_replicas zero timeout", redis("wait_replicas 1 0s"), "invalid wait_replicas timeout '0s'"},
		{"wait_replicas sub-millisecond timeout", redis("wait_replicas 1 500us"), "invalid wait_replicas timeout '500us'"},
		{"wait_replicas extra", redis("wait_replicas 1 1s 2s"), "wrong argument count"},
		{"wait_replicas twice", redis("wait_replicas 1\n\t\twait_replicas 2"), "wait_replicas already specified"},
		{"tls unknown option", redis("tls verify_none"), "unknown tls option 'verify_none'"},
		{"tls twice", redis("tls\n\t\ttls"), "tls already specified"},
		{"tls unknown subdirective", redis("tls {\n\t\t\tca /x\n\t\t}"), "unrecognized tls subdirective 'ca'"},
		{"tls ca_file twice", redis("tls {\n\t\t\tca_file /a\n\t\t\tca_file /b\n\t\t}"), "ca_file already specified"},
		{"tls ca_file extra", redis("tls {\n\t\t\tca_file /a /b\n\t\t}"), "wrong argument count"},
		{"tls cert_file alone", redis("tls {\n\t\t\tcert_file /c\n\t\t}"), "tls cert_file and key_file must be given together"},
		{"tls key_file alone", redis("tls {\n\t\t\tkey_file /k\n\t\t}"), "tls cert_file and key_file must be given together"},
		{"registration twice", "client_registration {\n\tregistration open\n\tregistration user\n}", "registration already specified"},
		{"registration extra", "client_registration {\n\tregistration open user\n}", "wrong argument count"},
		{"initial_access_token empty", "client_registration {\n\tinitial_access_token\n}", "wrong argument count"},
		{"rate_limit off with a window", "client_registration {\n\trate_limit off 1h\n}", "rate_limit off takes no window"},
		{"initial_access_token without token mode", "client_registration {\n\tinitial_access_token t\n}", "registration is open, which asks for no token"},
		{"initial_access_token in user mode", "client_registration {\n\tinitial_access_token t\n\tregistration user\n}", "registration is user"},
		{"cors empty", "client_registration {\n\tcors\n}", "wrong argument count"},
		{"allowed_scopes empty", "client_registration {\n\tallowed_scopes\n}", "wrong argument count"},
		{"default_scope twice", "client_registration {\n\tdefault_scope a\n\tdefault_scope b\n}", "default_scope already specified"},
		{"default_scope empty", "client_registration {\n\tdefault_scope\n}", "wrong argument count"},
		{"require_software_statement argument", "client_registration {\n\trequire_software_statement yes\n}", "wrong argument count"},
		{"advertise_registration value", "client_registration {\n\tadvertise_registration yes\n}", "want on or off"},
		{"advertise_registration twice", "client_registration {\n\tadvertise_registration on\n\tadvertise_registration off\n}", "already specified"},
		{"advertise_registration on iam", "client_registration iam {\n\tadvertise_registration on\n}", "publishes no server metadata"},
		{"software_statement argument", "client_registration {\n\tsoftware_statement x\n}", "wrong argument count"},
		{"software_statement without issuer", "client_registration {\n\tsoftware_statement\n}", "software_statement names no issuer"},
		{"software_statement empty block", "client_registration {\n\tsoftware_statement {\n\t}\n}", "software_statement names no issuer"},
		{"software_statement unknown", "client_registration {\n\tsoftware_statement {\n\t\tkey /k\n\t}\n}", "unrecognized software_statement subdirective 'key'"},
		{"software_statement issuer unknown", "client_registration {\n\tsoftware_statement {\n\t\tissuer i {\n\t\t\talg RS256\n\t\t}\n\t}\n}", "unrecognized software_statement issuer subdirective 'alg'"},
		{"software_statement issuer missing", "client_registration {\n\tsoftware_statement {\n\t\tissuer\n\t}\n}", "wrong argument count"},
		{"software_statement secret too short", "client_registration {\n\tsoftware_statement {\n\t\tissuer i {\n\t\t\tsecret hunter2\n\t\t}\n\t}\n}", "secret must be at least 32 bytes"},
		{"software_statement secret twice", "client_registration {\n\tsoftware_statement {\n\t\tissuer i {\n\t\t\tsecret a\n\t\t\tsecret b\n\t\t}\n\t}\n}", "secret already specified"},
		{"software_statement key empty", "client_registration {\n\tsoftware_statement {\n\t\tissuer i {\n\t\t\tkey\n\t\t}\n\t}\n}", "wrong argument count"},
		{"max_redirect_uris off", "client_registration {\n\tmax_redirect_uris off\n}", "invalid max_redirect_uris 'off'"},
		{"max_redirect_uris negative", "client_registration {\n\tmax_redirect_uris -1\n}", "invalid max_redirect_uris '-1'"},
		{"max_clients bad", "client_registration {\n\tmax_clients many\n}", "invalid max_clients 'many'"},
		{"max_clients 0", "client_registration {\n\tmax_clients 0\n}", "invalid max_clients '0': must be a positive integer up to 2147483647, or off for no limit"},
		// The adapter's JSON would round it (above 2^53) or fail to load.
		{"max_redirect_uris huge", "client_registration {\n\tmax_redirect_uris 9007199254740993\n}", "invalid max_redirect_uris '9007199254740993': must be a positive integer up to 2147483647"},
		{"rate_limit count huge", "client_registration {\n\trate_limit 9223372036854775807 1h\n}", "must be a positive integer up to 2147483647"},
		{"max_clients_per_owner 0", "client_registration {\n\tmax_clients_per_owner 0\n}", "invalid max_clients_per_owner '0'"},
		{"max_clients extra", "client_registration {\n\tmax_clients 1 2\n}", "wrong argument count"},
		{"max_clients_per_owner missing", "client_registration {\n\tmax_clients_per_owner\n}", "wrong argument count"},
		{"rate_limit one argument", "client_registration {\n\trate_limit 60\n}", "rate_limit takes a count and a window"},
		{"rate_limit three arguments", "client_registration {\n\trate_limit 60 1h 2\n}", "rate_limit takes a count and a window"},
		{"rate_limit zero count", "client_registration {\n\trate_limit 0 1h\n}", "invalid rate_limit count '0'"},
		{"rate_limit bad window", "client_registration {\n\trate_limit 60 hourly\n}", "invalid rate_limit window 'hourly'"},
		{"rate_limit twice", "client_registration {\n\trate_limit off\n\trate_limit 1 1h\n}", "rate_limit already specified"},
		{"client_lifetime bad", "client_registration {\n\tclient_lifetime forever\n}", "invalid client_lifetime 'forever'"},
		{"idle_lifetime extra", "client_registration {\n\tidle_lifetime 1h 2h\n}", "wrong argument count"},

		// Bad values are refused where they are written, not only by
		// Validate after `caddy adapt` has printed them without a line.
		{"unknown api", "client_registration oidc", `unknown client_registration API "oidc"`},
		{"allowed_redirect_hosts URL", "client_registration {\n\tallowed_redirect_hosts app.example https://x.example\n}", `allowed_redirect_hosts: "https://x.example" must be a host name`},
		{"allowed_redirect_hosts with port", "client_registration {\n\tallowed_redirect_hosts x.example:443\n}", `allowed_redirect_hosts: "x.example:443" must be a host name`},
		{"allowed_redirect_hosts with path", "client_registration {\n\tallowed_redirect_hosts x.example/cb\n}", `allowed_redirect_hosts: "x.example/cb" must be a host name`},
		{"negative secret_lifetime", "client_registration {\n\tsecret_lifetime -1h\n}", "invalid secret_lifetime '-1h': must not be negative"},
		{"negative client_lifetime", "client_registration {\n\tclient_lifetime -5m\n}", "invalid client_lifetime '-5m'"},
		{"negative idle_lifetime", "client_registration {\n\tidle_lifetime -1s\n}", "invalid idle_lifetime '-1s'"},
		{"negative redis timeout", redis("timeout -1s"), "invalid timeout '-1s'"},
		{"max_redirect_uris zero", "client_registration {\n\tmax_redirect_uris 0\n}", "invalid max_redirect_uris '0'"},
		{"unknown registration mode", "client_registration {\n\tregistration anyone\n}", `registration "anyone"`},
		{"invalid timezone", "client_registration kustvakt {\n\ttimezone Mars/Olympus\n}", `timezone "Mars/Olympus"`},
		{"local timezone", "client_registration kustvakt {\n\ttimezone Local\n}", `timezone "Local" is not an IANA zone name`},
		{"leap-second timezone", "client_registration kustvakt {\n\ttimezone right/Europe/Berlin\n}", `timezone "right/Europe/Berlin" is not an IANA zone name`},
		{"posix timezone", "client_registration kustvakt {\n\ttimezone posix/UTC\n}", `timezone "posix/UTC" is not an IANA zone name`},
		{"posixrules timezone", "client_registration kustvakt {\n\ttimezone posixrules\n}", `timezone "posixrules" is not an IANA zone name`},
		{"empty timezone", "client_registration kustvakt {\n\ttimezone \"\"\n}", `timezone: an empty value ("", also what "{$VAR}" gives with the variable unset): leave timezone out for UTC`},
		{"dotted timezone", "client_registration kustvakt {\n\ttimezone ./right/Europe/Berlin\n}", `is not an IANA zone name`},
		{"doubled slash timezone", "client_registration kustvakt {\n\ttimezone Europe//Berlin\n}", `is not an IANA zone name`},
		{"leap-second timezone, other case", "client_registration kustvakt {\n\ttimezone Right/UTC\n}", `is not an IANA zone name`},
		{"factory timezone", "client_registration kustvakt {\n\ttimezone Factory\n}", `timezone "Factory" is not an IANA zone name`},
		{"relative issuer", "client_registration {\n\tissuer auth.example.com\n}", `issuer "auth.example.com" must be an absolute`},
		{"issuer a bare host placeholder", "client_registration {\n\tissuer {http.request.host}\n}", `({http.request.host} holds no scheme: write https://{http.request.host})`},
		{"issuer a bare host shorthand", "client_registration {\n\tissuer {hostport}/oauth\n}", `holds no scheme`},
		{"issuer placeholder with query", "client_registration {\n\tissuer https://{host}/?x=1\n}", "without query or fragment"},
		{"issuer with query", "client_registration {\n\tissuer https://a.example/?x=1\n}", "without query or fragment"},
		{"relative token_endpoint", "client_registration {\n\ttoken_endpoint /token\n}", `token_endpoint "/token" must be an absolute http(s) URL`},
		{"endpoint with a backslash", "client_registration {\n\ttoken_endpoint https://a.example/a\\b\n}", `must not contain \ (write /)`},
		{"endpoint with an escape that is none", "client_registration {\n\ttoken_endpoint https://a.example/t?x=%zz\n}", `token_endpoint "https://a.example/t?x=%zz" must be an absolute http(s) URL`},
		{"endpoint a bare host placeholder", "client_registration {\n\tauthorization_endpoint {http.request.host}/authorize\n}", `authorization_endpoint "{http.request.host}/authorize" must be an absolute http(s) URL ({http.request.host} holds no scheme`},
		{"endpoint a bare hostport shorthand", "client_registration {\n\ttoken_endpoint {hostport}\n}", `holds no scheme`},
		{"relative authorization_endpoint", "client_registration {\n\tauthorization_endpoint authorize\n}", `authorization_endpoint "authorize"`},
		{"prefix without slash", "client_registration {\n\tprefix oauth\n}", `prefix "oauth" must start with /`},
		{"user not a placeholder", "client_registration {\n\tuser alice\n}", `user "alice" must be a request placeholder`},
		{"user a token owner", "client_registration {\n\tuser token:{http.auth.user.id}\n}", `user "token:{http.auth.user.id}" must not start with "token:"`},
		{"cors origin without scheme", "client_registration {\n\tcors example.com\n}", `cors origin "example.com"`},
		{"cors origin with trailing slash", "client_registration {\n\tcors https://app.example/\n}", `cors origin "https://app.example/"`},
		{"cors origin with path", "client_registration {\n\tcors https://app.example/app\n}", `cors origin "https://app.example/app"`},
		{"cors origin in capitals", "client_registration {\n\tcors https://App.example\n}", `as browsers send it`},
		{"cors origin with default port", "client_registration {\n\tcors https://app.example:443\n}", `without the scheme's default port`},
		{"cors origin null", "client_registration {\n\tcors null\n}", `cors origin "null"`},
		{"cors origin with a padded port", "client_registration {\n\tcors http://localhost:03000\n}", `cors origin "http://localhost:03000"`},
		{"cors origin with a long IPv6 form", "client_registration {\n\tcors http://[0::1]\n}", `cors origin "http://[0::1]"`},
		{"cors origin with a short IPv4 form", "client_registration {\n\tcors http://127.1\n}", `cors origin "http://127.1"`},
		{"cors origin ending in a number", "client_registration {\n\tcors http://a.1\n}", `cors origin "http://a.1"`},
		{"unknown grant type", "client_registration {\n\tallowed_grant_types password\n}", `"password" is not a grant type`},
		{"unknown response type", "client_registration {\n\tallowed_response_types token_id\n}", `"token_id" is not a response type`},
		{"unknown auth method", "client_registration {\n\tallowed_auth_methods tls_client\n}", `"tls_client" is not an authentication method`},
		{"redis address without port", redis("address localhost"), `address "localhost" must be host:port`},
		{"redis address with empty port", redis("address localhost:"), `address of host "localhost": the port must be a number`},
		{"redis unix socket in a cluster", redis("address /run/redis.sock 10.0.0.2:6379"), `unix socket "/run/redis.sock" works for a single node only`},
		{"redis URL with options", redis("address redis://r:6379?dial_timeout=1s"), "options in a redis:// address are not supported"},
		{"redis URL without host", redis("address redis:///0"), "needs a host"},
		{"redis URL bad database", redis("address redis://r:6379/x"), "must be a database number"},
		{"redis other scheme", redis("address http://r:6379"), "must be a redis:// or rediss:// URL"},
		{"redis credentials without scheme", redis("address user:hunter2@r:6379"), "must be a redis:// or rediss:// URL"},
		{"redis password as port", redis("address r:hunter2"), `address of host "r": the port must be a number`},
		{"redis unix URL", redis("address unix:///run/r.sock"), "must be a redis:// or rediss:// URL"},
		{"redis key_prefix braces", redis("key_prefix {dcr}:"), `key_prefix "{dcr}:" must not contain braces`},
		{"redis key_prefix empty", redis(`key_prefix ""`), `key_prefix: an empty value ("", also what "{$VAR}" gives with the variable unset): it would be the default prefix "dcr:"`},
		{"redis without address", "client_registration {\n\tstorage redis\n}", "at least one address is required"},
		{"redis empty block", "client_registration {\n\tstorage redis {\n\t}\n}", "at least one address is required"},
		{"redis db with cluster", "client_registration {\n\tstorage redis {\n\t\taddress a:1 b:2\n\t\tdb 3\n\t}\n}", "db must be 0 with a cluster"},
		{"super_client empty id", "client_registration kustvakt {\n\tsuper_client \"\" s\n}", "super_client: an empty value"},
		{"super_client empty secret", "client_registration kustvakt {\n\tsuper_client kalamar \"\"\n}", `super_client: an empty value ("", also what "{$VAR}" gives with the variable unset): a super client takes a client id and a secret (super clients are confidential), at Testfile:2`},
		{"empty registration", "client_registration {\n\tregistration \"\"\n}", `registration: an empty value ("", also what "{$VAR}" gives with the variable unset): write the value, or leave registration out (for its default, where it has one), at Testfile:2`},
		{"empty ca_file", redis("tls {\n\t\t\tca_file \"\"\n\t\t}"), `ca_file: an empty value`},
		{"empty prefix", "client_registration {\n\tprefix \"\"\n}", `prefix: an empty value ("", also what "{$VAR}" gives with the variable unset): leave prefix out, or write /, for the site root`},
		{"empty API", "client_registration \"\"", `client_registration: an empty value ("", also what "{$VAR}" gives with the variable unset): give an API name, or none for rfc7591`},
		{"empty key", "client_registration {\n\tsoftware_statement {\n\t\tissuer https://i.example {\n\t\t\tkey \"\"\n\t\t}\n\t}\n}", `key: an empty value`},
		{"block after tls ca_file", redis("tls {\n\t\t\tca_file /x {\n\t\t\t}\n\t\t}"), "tls ca_file takes no block"},
		{"block after issuer key", "client_registration {\n\tsoftware_statement {\n\t\tissuer https://i.example {\n\t\t\tkey /x {\n\t\t\t}\n\t\t}\n\t}\n}", "key takes no block"},
		{"wait_replicas too many", redis("wait_replicas 9223372036854775807"), "invalid wait_replicas '9223372036854775807'"},
		{"wait_replicas timeout too long", redis("wait_replicas 1 2562047h"), "wait_replicas timeout 2562047h0m0s is too long: at most 100 years"},
		{"empty option name", "client_registration {\n\t\"\" open\n}", `an empty option name ("", also what "{$VAR}" gives with the variable unset), at Testfile:2`},
		{"empty address", redis(`address ""`), `address: an empty value ("", also what "{$VAR}" gives with the variable unset): write the value, or leave address out (for its default, where it has one)`},
		{"idle_lifetime too long", "client_registration {\n\tidle_lifetime 2562047h47m16.854775807s\n}", "idle_lifetime 2562047h47m16.854775807s is too long: at most 100 years"},
		{"rate_limit window too long", "client_registration {\n\trate_limit 5 1000000h\n}", "rate_limit window 1000000h0m0s is too long"},
		{"redis timeout too long", redis("timeout 1000000h"), "timeout 1000000h0m0s is too long"},
		{"super_client on rfc7591", "client_registration {\n\tsuper_client a b\n}", "super_client applies to the kustvakt API only"},
		{"timezone on iam", "client_registration iam {\n\ttimezone UTC\n}", "timezone applies to the kustvakt API only"},
		{"admin_user on mediagoblin", "client_registration mediagoblin {\n\tadmin_user alice\n}", "admin_user applies to the kustvakt API only"},
		{"admin_token on rfc7591", "client_registration rfc7591 {\n\tadmin_token t\n}", "admin_token applies to the kustvakt API only"},
		{"statement issuer without key", "client_registration {\n\tsoftware_statement {\n\t\tissuer https://i.example\n\t}\n}", `issuer "https://i.example": give at least one key or a secret`},
		{"require_software_statement alone", "client_registration {\n\trequire_software_statement\n}", "needs at least one software_statement issuer"},
		{"default_scope not allowed", "client_registration {\n\tallowed_scopes a\n\tdefault_scope b\n}", `default_scope "b" is not among allowed_scopes`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var h Handler
			err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tc.input))
			if err == nil {
				t.Fatalf("no error; parsed %s", cfJSON(t, h))
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not contain %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error %q shows the password", err)
			}
			// Errors made with d.Err* name the file and line.
			if !strings.Contains(err.Error(), "Testfile:") {
				t.Errorf("error %q has no file:line", err)
			}
		})
	}
}

// TestUnmarshalCaddyfileErrorLines: errors found once a whole block is read
// point at the line of the option they name, not at the closing brace.
func TestUnmarshalCaddyfileErrorLines(t *testing.T) {
	for _, tc := range []struct{ input, want string }{
		{"client_registration {\n\tinitial_access_token abc\n\tsecret_lifetime 1h\n}", "add 'registration token', at Testfile:2"},
		{"client_registration {\n\tallowed_scopes a\n\tdefault_scope b\n\tsecret_lifetime 1h\n}", "is not among allowed_scopes, at Testfile:3"},
		{"client_registration {\n\tstorage redis {\n\t\taddress r:1\n\t\twait_replicas 1 5s\n\t\tkey_prefix x:\n\t}\n}", "the wait is part of a command's time, at Testfile:4"},
		{"client_registration {\n\tstorage redis {\n\t\taddress a:1 b:2\n\t\tdb 3\n\t\tkey_prefix x:\n\t}\n}", "db must be 0 with a cluster (several addresses), at Testfile:4"},
		// No option named: the closing brace.
		{"client_registration {\n\tstorage redis {\n\t\tkey_prefix x:\n\t}\n}", "at least one address is required, at Testfile:4"},
	} {
		var h Handler
		err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tc.input))
		if err == nil || !strings.HasSuffix(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want it to end with %q", tc.input, err, tc.want)
		}
	}
}

// TestUnmarshalCaddyfileMatcher runs the directive through the Caddyfile
// adapter, which strips the matcher token before UnmarshalCaddyfile sees it.
func TestUnmarshalCaddyfileMatcher(t *testing.T) {
	for _, tc := range []struct{ directive, match string }{
		{"client_registration /oauth/* {\n\t\tprefix /oauth\n\t}", `"match":[{"path":["/oauth/*"]}]`},
		{"@dcr path /v1/*\n\tclient_registration @dcr iam", `"match":[{"path":["/v1/*"]}]`},
		{"client_registration * mediagoblin", `"api":"mediagoblin"`},
	} {
		out := cfAdapt(t, "test", "http://localhost:9080 {\n\t"+tc.directive+"\n}\n")
		if !strings.Contains(string(out), tc.match) || !strings.Contains(string(out), `"handler":"client_registration"`) {
			t.Errorf("%q adapted to\n%s\nwant it to contain %s", tc.directive, out, tc.match)
		}
	}
}

// cfJSON encodes v compactly.
func cfJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// cfAdapt adapts a Caddyfile and fails the test on an error or on any
// warning, including "input is not formatted".
func cfAdapt(t *testing.T, name, input string) []byte {
	t.Helper()
	out, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(input), map[string]any{"filename": name})
	if err != nil {
		t.Fatalf("adapting %s: %v", name, err)
	}
	for _, w := range warnings {
		t.Errorf("adapting %s: warning: %s", name, w.String())
	}
	return out
}

// cfNormalize decodes JSON into generic values (numbers kept exact) so that
// key order and whitespace do not matter.
func cfNormalize(t *testing.T, what string, b []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("%s is not JSON: %v\n%s", what, err, b)
	}
	return v
}

func cfPretty(t *testing.T, b []byte) string {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Indent(&buf, b, "", "\t"); err != nil {
		t.Fatalf("indenting JSON: %v", err)
	}
	return buf.String()
}

const cfGoldenSeparator = "----------"

// TestCaddyfileAdapt adapts every testdata/caddyfile_adapt/*.caddyfiletest
// (a Caddyfile, a line "----------", the expected JSON) and compares the
// JSON after normalizing it. UPDATE_GOLDEN=1 rewrites the expected JSON.
func TestCaddyfileAdapt(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "caddyfile_adapt", "*.caddyfiletest"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no golden files in testdata/caddyfile_adapt")
	}
	update := os.Getenv("UPDATE_GOLDEN") == "1"
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".caddyfiletest"), func(t *testing.T) {
			b, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			input, want, ok := strings.Cut(string(b), "\n"+cfGoldenSeparator+"\n")
			if !ok {
				t.Fatalf("%s: no line %q between the Caddyfile and the JSON", file, cfGoldenSeparator)
			}
			input += "\n"
			got := cfAdapt(t, file, input)
			if update {
				out := input + cfGoldenSeparator + "\n" + cfPretty(t, got) + "\n"
				if err := os.WriteFile(file, []byte(out), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if !reflect.DeepEqual(cfNormalize(t, "adapted config", got), cfNormalize(t, file, []byte(want))) {
				t.Fatalf("%s: adapted JSON differs (UPDATE_GOLDEN=1 rewrites it)\ngot:\n%s\nwant:\n%s", file, cfPretty(t, got), want)
			}
		})
	}
}

// TestCaddyfileAdaptKeepsSecrets checks that {env.*} and {file.*}
// placeholders reach the JSON config unresolved, so secrets never appear in
// it (nor in the admin API's GET /config/), even when the variables are set.
func TestCaddyfileAdaptKeepsSecrets(t *testing.T) {
	secrets := map[string]string{
		"DCR_TEST_REDIS_PASSWORD": "redis-secret-7f3a",
		"DCR_TEST_REDIS_USER":     "redis-user-91c2",
		"DCR_TEST_SUPER_SECRET":   "super-secret-5d1e",
		"DCR_TEST_ADMIN_TOKEN":    "admin-token-a8b4",
	}
	for k, v := range secrets {
		t.Setenv(k, v)
	}
	out := string(cfAdapt(t, "secrets", `http://localhost:9080 {
	client_registration kustvakt {
		storage redis {
			address localhost:6379
			username {env.DCR_TEST_REDIS_USER}
			password {env.DCR_TEST_REDIS_PASSWORD}
			tls {
				ca_file {file./run/secrets/redis-ca-path}
			}
		}
		super_client korap {env.DCR_TEST_SUPER_SECRET}
		admin_token {env.DCR_TEST_ADMIN_TOKEN}
	}
}
`))
	for k, v := range secrets {
		if strings.Contains(out, v) {
			t.Errorf("the JSON config contains the value of %s:\n%s", k, out)
		}
		if !strings.Contains(out, "{env."+k+"}") {
			t.Errorf("the JSON config lost the placeholder {env.%s}:\n%s", k, out)
		}
	}
	if !strings.Contains(out, "{file./run/secrets/redis-ca-path}") {
		t.Errorf("the JSON config lost the {file.*} placeholder:\n%s", out)
	}
}

// TestCaddyfileExample checks the shipped example: already formatted, adapts
// without warnings, serves the four APIs on http://localhost:8080 with the
// embedded store, authenticates Kustvakt with the password its comment
// gives, and holds no unresolved or leaked secrets.
func TestCaddyfileExample(t *testing.T) {
	b, err := os.ReadFile("Caddyfile.example")
	if err != nil {
		t.Fatal(err)
	}
	if formatted := caddyfile.Format(b); !bytes.Equal(formatted, b) {
		t.Fatalf("Caddyfile.example is not formatted; run: bin/caddy fmt --overwrite Caddyfile.example\nformatted:\n%s", formatted)
	}
	out := cfAdapt(t, "Caddyfile.example", string(b))

	var cfg struct {
		Apps struct {
			HTTP struct {
				Servers map[string]struct {
					Listen []string          `json:"listen"`
					Routes []json.RawMessage `json:"routes"`
				} `json:"servers"`
			} `json:"http"`
		} `json:"apps"`
	}
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatal(err)
	}
	if len(cfg.Apps.HTTP.Servers) != 1 {
		t.Fatalf("want one server, got %d", len(cfg.Apps.HTTP.Servers))
	}
	for _, srv := range cfg.Apps.HTTP.Servers {
		if !reflect.DeepEqual(srv.Listen, []string{":8080"}) {
			t.Errorf("listen %q, want [\":8080\"]", srv.Listen)
		}
	}

	// The handlers in the order a request meets them.
	var handlers []map[string]any
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if _, ok := v["handler"]; ok {
				handlers = append(handlers, v)
			}
			walk(v["handle"])
			walk(v["routes"])
		case []any:
			for _, e := range v {
				walk(e)
			}
		}
	}
	walk(cfNormalize(t, "Caddyfile.example", out).(map[string]any)["apps"].(map[string]any)["http"].(map[string]any)["servers"].(map[string]any)["srv0"])
	var order []string
	for _, h := range handlers {
		name := h["handler"].(string)
		switch name {
		case "client_registration":
			api, _ := h["api"].(string)
			if api == "" {
				api = "rfc7591"
			}
			name += ":" + api
			if st, _ := json.Marshal(h["storage"]); string(st) != `{"caddy":{}}` {
				t.Errorf("%s uses storage %s, want the embedded store {\"caddy\":{}}", name, st)
			}
		case "authentication":
			providers, _ := h["providers"].(map[string]any)
			hb, _ := providers["http_basic"].(map[string]any)
			accounts, _ := hb["accounts"].([]any)
			if len(accounts) != 1 {
				t.Fatalf("basic_auth accounts %v, want one", accounts)
			}
			acct := accounts[0].(map[string]any)
			ok, err := caddyauth.BcryptHash{}.Compare([]byte(acct["password"].(string)), []byte("wonderland"))
			if err != nil || !ok || acct["username"] != "alice" {
				t.Errorf("basic_auth account %v does not accept alice/wonderland, as the comment says (%v)", acct, err)
			}
		}
		if name != "subroute" {
			order = append(order, name)
		}
	}
	want := []string{"client_registration:rfc7591", "client_registration:mediagoblin", "client_registration:iam",
		"authentication", "client_registration:kustvakt", "static_response", "static_response"}
	if !reflect.DeepEqual(order, want) {
		t.Errorf("handlers in order %q, want %q", order, want)
	}
	if strings.Contains(string(out), `"redis"`) {
		t.Errorf("the example's active config uses Redis; it must run without it")
	}
	if !regexp.MustCompile(`(?m)^\t#\tpassword \{env\.REDIS_PASSWORD\}$`).Match(b) {
		t.Errorf("the example does not show the commented-out Redis block with password {env.REDIS_PASSWORD}")
	}
	var h Handler
	commented := regexp.MustCompile(`(?ms)^\t# (storage redis \{.*?^\t# \})`).FindSubmatch(b)
	if commented == nil {
		t.Fatal("no commented-out storage redis block in the example")
	}
	block := regexp.MustCompile(`(?m)^\t#`).ReplaceAllString(string(commented[1]), "")
	if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser("client_registration {\n" + block + "\n}")); err != nil {
		t.Errorf("the commented-out Redis block does not parse once uncommented: %v\n%s", err, block)
	} else if r := h.Storage.Redis; r == nil || len(r.Address) != 1 || r.Password != "{env.REDIS_PASSWORD}" || r.KeyPrefix != "dcr:" {
		t.Errorf("the commented-out Redis block parses to %s", cfJSON(t, h.Storage))
	}
}

// TestCaddyfileBench checks that bench/Caddyfile, which `make bench` adapts
// with its own environment, is formatted and adapts without warnings.
func TestCaddyfileBench(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("bench", "Caddyfile"))
	if err != nil {
		t.Fatal(err)
	}
	if formatted := caddyfile.Format(b); !bytes.Equal(formatted, b) {
		t.Fatalf("bench/Caddyfile is not formatted:\n%s", formatted)
	}
	for k, v := range map[string]string{"BENCH_PORT": "18080", "BENCH_ADMIN": "127.0.0.1:12019",
		"BENCH_REDIS": "127.0.0.1:16379", "BENCH_DIR": t.TempDir()} {
		t.Setenv(k, v)
	}
	out := string(cfAdapt(t, "bench/Caddyfile", string(b)))
	for _, want := range []string{`"address":["127.0.0.1:16379"]`, `"listen":["127.0.0.1:18080"]`, `"api":"mediagoblin"`,
		`"api":"iam"`, `"api":"kustvakt"`, `"hash_cache":{}`, `"rate_limit":{"count":0}`, `"max_clients":0`, `"max_clients_per_owner":0`} {
		if !strings.Contains(out, want) {
			t.Errorf("bench/Caddyfile adapts to JSON without %s:\n%s", want, out)
		}
	}
}

// TestUnmarshalCaddyfileSyntaxCovered reads the syntax tree in
// UnmarshalCaddyfile's godoc and checks that cfEveryInput (parsed above)
// uses every subdirective it names, at every level.
func TestUnmarshalCaddyfileSyntaxCovered(t *testing.T) {
	src, err := os.ReadFile("caddyfile.go")
	if err != nil {
		t.Fatal(err)
	}
	_, doc, ok := strings.Cut(string(src), "// UnmarshalCaddyfile sets up")
	if ok {
		doc, _, ok = strings.Cut(doc, "func (h *Handler) UnmarshalCaddyfile")
	}
	if !ok {
		t.Fatal("caddyfile.go: no godoc for UnmarshalCaddyfile")
	}
	used := map[string]bool{}
	for _, line := range strings.Split(cfEveryInput+"\n"+cfRFC7591Input, "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			used[f[0]] = true
		}
	}
	var names []string
	for _, line := range strings.Split(doc, "\n") {
		line = strings.TrimPrefix(strings.TrimSpace(line), "//")
		if !strings.HasPrefix(line, "\t") {
			continue // prose, not the syntax block
		}
		f := strings.Fields(line)
		if len(f) == 0 || f[0] == "}" || f[0] == "client_registration" {
			continue
		}
		names = append(names, f[0])
		if !used[f[0]] {
			t.Errorf("the godoc syntax has %q, which neither cfEveryInput nor cfRFC7591Input uses", f[0])
		}
	}
	if len(names) < 20 {
		t.Fatalf("found only %d subdirectives in the godoc syntax: %q", len(names), names)
	}
}

// TestUnmarshalCaddyfileDuplicates: an option that takes one value may not
// be given twice; the second would silently win otherwise.
func TestUnmarshalCaddyfileDuplicates(t *testing.T) {
	for _, in := range []string{
		"prefix /\n\tprefix /x", "db 1\n\t\tdb 2", "timeout 1s\n\t\ttimeout 2s", "max_clients 1\n\tmax_clients 2",
		"max_redirect_uris 1\n\tmax_redirect_uris 2", "client_lifetime 1h\n\tclient_lifetime 2h",
		"idle_lifetime 1h\n\tidle_lifetime 2h", "require_software_statement\n\trequire_software_statement",
		"super_client a x\n\tsuper_client a y", "registration open\n\tregistration token",
	} {
		body := in
		if strings.HasPrefix(in, "db") || strings.HasPrefix(in, "timeout") {
			body = "storage redis {\n\t\taddress x:1\n\t\t" + in + "\n\t}"
		}
		d := caddyfile.NewTestDispenser("client_registration kustvakt {\n\t" + body + "\n}")
		if err := new(Handler).UnmarshalCaddyfile(d); err == nil || !strings.Contains(err.Error(), "already specified") {
			t.Errorf("%q: %v", in, err)
		}
	}
	d := caddyfile.NewTestDispenser("client_registration {\n\tstorage redis {\n\t\taddress x:1\n\t\ttls insecure_skip_verify insecure_skip_verify\n\t}\n}")
	if err := new(Handler).UnmarshalCaddyfile(d); err == nil {
		t.Error("repeated tls option accepted")
	}
	x, y := strings.Repeat("x", 32), strings.Repeat("y", 32)
	d = caddyfile.NewTestDispenser("client_registration {\n\tsoftware_statement {\n\t\tissuer a {\n\t\t\tsecret " + x + "\n\t\t}\n\t\tissuer a {\n\t\t\tsecret " + y + "\n\t\t}\n\t}\n}")
	if err := new(Handler).UnmarshalCaddyfile(d); err == nil || !strings.Contains(err.Error(), "issuer a already specified") {
		t.Errorf("repeated issuer: %v", err)
	}
}

// TestCaddyfileErrorLines: a bad value is reported at the line that holds
// it, also inside blocks and imported snippets' users.
func TestCaddyfileErrorLines(t *testing.T) {
	for _, tc := range []struct {
		input string
		line  int
	}{
		{"client_registration {\n\tprefix /a\n\tissuer ftp://x\n}", 3},
		{"client_registration {\n\tprefix /a\n\n\tclient_lifetime -1h\n}", 4},
		{"client_registration kustvakt {\n\tadmin_user a\n\ttimezone Nowhere/City\n}", 3},
		{"client_registration {\n\tstorage redis {\n\t\taddress a:1\n\t\taddress nohost\n\t}\n}", 4},
		{"client_registration {\n\tcors https://a.example\n\tcors a.example\n}", 3},
		{"client_registration {\n\tsoftware_statement {\n\t\tissuer https://i.example {\n\t\t\tsoftware_id x\n\t\t}\n\t}\n}", 5},
	} {
		err := new(Handler).UnmarshalCaddyfile(caddyfile.NewTestDispenser(tc.input))
		if want := "Testfile:" + strconv.Itoa(tc.line); err == nil || !strings.HasSuffix(err.Error(), want) {
			t.Errorf("%q: error %v, want it at %s", tc.input, err, want)
		}
	}
}

// TestValidateJSON: a JSON config gets the checks a Caddyfile gets at parse
// time, from Validate, which does no I/O.
func TestValidateJSON(t *testing.T) {
	for _, tc := range []struct{ config, want string }{
		{`{"api":"oidc"}`, `unknown client_registration API "oidc"`},
		{`{"prefix":"oauth"}`, "must start with /"},
		{`{"issuer":"auth.example"}`, "must be an absolute http(s) URL"},
		{`{"secret_lifetime":"-1h"}`, "secret_lifetime must not be negative"},
		{`{"client_lifetime":-1}`, "must not be negative"},
		{`{"storage":{"redis":{}}}`, "at least one address"},
		{`{"storage":{"redis":{"address":["redis"]}}}`, `address "redis" must be host:port`},
		{`{"storage":{"redis":{"address":["r:1"],"db":-1}}}`, "db must not be negative"},
		{`{"storage":{"redis":{"address":["r:1"],"key_prefix":"{app}:"}}}`, "must not contain braces"},
		{`{"storage":{"redis":{"address":["r:1"]},"caddy":{}}}`, "choose either redis or caddy"},
		{`{"storage":{"redis":{"address":["r:1","r:2"],"wait_replicas":1}}}`, "not with a cluster"},
		{`{"storage":{"redis":{"address":["r:1"],"wait_replicas":-1}}}`, "wait_replicas must not be negative"},
		{`{"storage":{"redis":{"address":["r:1"],"wait_timeout":"1s"}}}`, "wait_timeout needs wait_replicas"},
		{`{"storage":{"redis":{"address":["r:1"],"wait_replicas":1,"wait_timeout":"2s"}}}`, "wait_timeout 2s must be shorter than timeout 2s"},
		{`{"storage":{"redis":{"address":["r:1"],"wait_replicas":1,"wait_timeout":1}}}`, "wait_timeout 1ns is shorter than a millisecond"},
		{`{"storage":{"redis":{"address":["r:1"],"wait_replicas":1,"wait_timeout":"300ms","timeout":"200ms"}}}`, "shorter than timeout 200ms"},
		{`{"super_clients":[{"client_id":"a","secret":"s"}]}`, "super_client applies to the kustvakt API only, not rfc7591"},
		{`{"api":"iam","timezone":"UTC"}`, "timezone applies to the kustvakt API only, not iam"},
		{`{"api":"mediagoblin","admin_users":["a"]}`, "admin_user applies to the kustvakt API only"},
		{`{"api":"kustvakt","super_clients":[{"client_id":"a"},{"client_id":"a","secret":"s"}]}`, "super_client a is declared twice"},
		{`{"api":"kustvakt","super_clients":[{"secret":"s"}]}`, "client id is required"},
		{`{"software_statement":{}}`, "software_statement names no issuer"},
		{`{"user":"{http.request.header.X"}`, "must be a request placeholder"},
		{`{"user":"{env.USER}"}`, "must be a request placeholder"},
		{`{"software_statement":{"issuers":[{"issuer":"https://i.example","keys":["http://keys.example/jwks.json"]}]}}`, "must use https (http only on loopback)"},
		{`{"initial_access_tokens":["t"]}`, "registration is open, which asks for no token; add 'registration token'"},
		{`{"api":"kustvakt","initial_access_tokens":["t"]}`, "registration is user"},
		{`{"registration":"user","initial_access_tokens":["t"]}`, "registration is user"},
		{`{"allowed_response_types":["token"],"allowed_grant_types":["authorization_code"]}`, "leave no grant type a client can register"},
		{`{"rate_limit":{"window":"10m"}}`, "count is required"},
		{`{"allowed_scopes":["a b"]}`, `allowed_scopes: "a b" is not a scope token`},
		{`{"allowed_scopes":[""]}`, `allowed_scopes: "" is not a scope token`},
		{`{"allowed_scopes":["a","a"]}`, `"a" is listed twice`},
		{`{"default_scope":"a\"b"}`, `"a\"b" is not one`},
		{`{"default_scope":"a  b"}`, `"" is not one`},
		{`{"default_scope":" openid"}`, `"" is not one`},
		{`{"default_scope":"openid openid"}`, `default_scope: "openid" is listed twice`},
		{`{"issuer":"https://u:IssuerPass@auth.example"}`, "issuer must not hold user information"},
		{`{"token_endpoint":"ftp://auth.example/t"}`, `token_endpoint "ftp://auth.example/t" must be an absolute http(s) URL`},
		{`{"authorization_endpoint":"https://u:p@auth.example/a"}`, "authorization_endpoint must not hold user information"},
		{`{"token_endpoint":"https://user:s3cr%t@x.example/t"}`, `token_endpoint "https://…@x.example/t" must be an absolute http(s) URL`},
		{`{"issuer":"ftp://user:s3cr%t@x.example"}`, `issuer "ftp://…@x.example" must be`},
		{`{"token_endpoint":"https://user:s3cr#t@x.example/t"}`, `token_endpoint "https://…@x.example/t" must be`},
		{`{"rate_limit":{"count":0,"window":"10m"}}`, "turns the limit off and takes no window"},
		{`{"rate_limit":{"count":1,"window":3600}}`, "rate_limit window 3.6µs is too short"},
		{`{"client_lifetime":1}`, "client_lifetime 1ns is too short"},
		{`{"idle_lifetime":"500ms"}`, "idle_lifetime 500ms is too short"},
		{`{"secret_lifetime":1000}`, "secret_lifetime 1µs is too short"},
		{`{"storage":{"redis":{"address":["r:1"],"timeout":2}}}`, "timeout 2ns is too short"},
		{`{"storage":{"redis":{"address":["r:1"],"db":99999999999}}}`, "db is out of range"},
		{`{"storage":{"redis":{"address":[""]}}}`, "an address is empty"},
		{`{"allowed_grant_types":["client_credentials"],"allowed_auth_methods":["none"]}`, `"client_credentials" is never registered`},
		{`{"token_endpoint":"https://t.example/tok#f"}`, "must not include a fragment"},
		{`{"authorization_endpoint":"https://t.example/a#"}`, "must not include a fragment"},
		{`{"token_endpoint":"https://t.example:99999/tok"}`, "must be an absolute http(s) URL"},
		{`{"issuer":"https://x.example/ a"}`, "must be an absolute http(s) URL"},
		{`{"issuer":"https://x.example:99999"}`, "must be an absolute http(s) URL"},
		{`{"issuer":"https://x.example:0"}`, "must be an absolute http(s) URL"},
		{`{"prefix":"/a/../b"}`, "must not contain . or .. segments"},
		{`{"prefix":"/a/."}`, "must not contain . or .. segments"},
		{"{\"prefix\":\"/a\\u0000b\"}", "must not contain control characters"},
		{`{"prefix":"/{http.request.host}"}`, "placeholders are not resolved in it"},
		{`{"prefix":"/dcr/*"}`, `it is a path, not a matcher (write "/dcr")`},
		{`{"storage":{"redis":{"address":["r:1"],"key_prefix":"a\nb:"}}}`, "must not contain control characters"},
		// A duration JSON cannot read: the error names the field.
		{`{"idle_lifetime":"2x"}`, `"2x" (time: unknown unit "x" in duration "2x") into Go struct field Handler.idle_lifetime`},
		{`{"secret_lifetime":"bogus"}`, "Handler.secret_lifetime"},
		{`{"client_lifetime":true}`, "Handler.client_lifetime"},
		{`{"storage":{"redis":{"address":["r:1"],"timeout":"soon"}}}`, "timeout"},
		{`{"storage":{"redis":{"address":["r:1"],"wait_timeout":"1 s"}}}`, "wait_timeout"},
		{`{"rate_limit":{"count":5,"window":"2x"}}`, "rate_limit: json: cannot unmarshal \"2x\" (time: unknown unit \"x\" in duration \"2x\") into Go struct field .window"},
	} {
		var h Handler
		dec := json.NewDecoder(strings.NewReader(tc.config))
		dec.DisallowUnknownFields()
		err := dec.Decode(&h)
		if err == nil {
			err = h.Validate()
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Validate: %v, want %q", tc.config, err, tc.want)
		}
	}
	for _, ok := range []string{
		`{"software_statement":{"issuers":[{"issuer":"https://i.example","keys":["http://127.0.0.1:8080/jwks.json","https://keys.example/j"]}]}}`,
		`{}`,
		`{"api":"kustvakt","timezone":"Not/AZone"}`, // Provision loads the zone: Validate reads no files
		`{"storage":{"redis":{"address":["{env.REDIS_ADDR}","[::1]:6379"],"key_prefix":"{env.DCR_PREFIX}:"}}}`,
		`{"issuer":"https://{http.request.host}/oauth","user":"{http.request.header.Remote-User}"}`,
		`{"storage":{"redis":{"address":["s:26379","s2:26379"],"master_name":"m","wait_replicas":2,"wait_timeout":"1s"}}}`,
		`{"storage":{"redis":{"address":["r:1"],"wait_replicas":1}}}`,
	} {
		var h Handler
		if err := json.Unmarshal([]byte(ok), &h); err != nil {
			t.Fatal(err)
		}
		if err := h.Validate(); err != nil {
			t.Errorf("%s: Validate: %v", ok, err)
		}
	}
}

// TestProvisionReleasesPools loads configs the way `caddy validate` does
// (provision, then Cleanup) and checks that no reference to the shared
// Redis pool or store outlives them, also when provisioning fails half way.
func TestProvisionReleasesPools(t *testing.T) {
	// A password of its own gives this test a pool key nobody else uses.
	password := fmt.Sprintf("pool-test-%d", time.Now().UnixNano())
	redis := fmt.Sprintf(`"storage":{"redis":{"address":["127.0.0.1:1"],"password":%q,"key_prefix":"pooltest:"}}`, password)
	opts, err := (&RedisConfig{Address: []string{"127.0.0.1:1"}, Password: password}).options(caddy.NewReplacer())
	if err != nil {
		t.Fatal(err)
	}
	key := "redis:" + opts.fingerprint
	config := func(handlers ...string) []byte {
		return []byte(fmt.Sprintf(`{"storage":{"module":"file_system","root":%q},"admin":{"disabled":true},
			"apps":{"http":{"servers":{"s":{"listen":["127.0.0.1:0"],"routes":[{"handle":[%s]}]}}}}}`,
			t.TempDir(), strings.Join(handlers, ",")))
	}
	for _, tc := range []struct {
		name    string
		handler []string
		fails   string
	}{
		{"three handlers, one pool", []string{
			`{"handler":"client_registration",` + redis + `}`,
			`{"handler":"client_registration","api":"iam",` + redis + `}`,
			`{"handler":"client_registration","api":"mediagoblin"}`,
		}, ""},
		{"provision fails after the pool is taken", []string{
			`{"handler":"client_registration","api":"kustvakt","timezone":"Not/AZone",` + redis + `}`,
		}, `timezone "Not/AZone"`},
		{"validate fails after provision", []string{
			`{"handler":"client_registration",` + redis + `}`,
			`{"handler":"client_registration","api":"iam","timezone":"UTC",` + redis + `}`,
		}, "timezone applies to the kustvakt API only"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var cfg caddy.Config
			if err := json.Unmarshal(config(tc.handler...), &cfg); err != nil {
				t.Fatal(err)
			}
			err := caddy.Validate(&cfg)
			if tc.fails == "" && err != nil {
				t.Fatalf("caddy.Validate: %v", err)
			}
			if tc.fails != "" && (err == nil || !strings.Contains(err.Error(), tc.fails)) {
				t.Fatalf("caddy.Validate: %v, want %q", err, tc.fails)
			}
			if refs, ok := pools.References(key); ok {
				t.Errorf("the Redis pool still has %d references after Cleanup", refs)
			}
			if _, err := activeStores.get("pooltest:"); err == nil {
				t.Error("the admin API still reaches the store after Cleanup")
			}
		})
	}
}

// TestCleanupTwice: a second Cleanup of one handler must not release a
// reference that another handler holds.
func TestCleanupTwice(t *testing.T) {
	const key = "test:cleanup-twice"
	for range 2 {
		if _, _, err := pools.LoadOrNew(key, func() (caddy.Destructor, error) { return &sharedStore{}, nil }); err != nil {
			t.Fatal(err)
		}
	}
	h := &Handler{poolKey: key}
	if err := h.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if err := h.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if refs, ok := pools.References(key); !ok || refs != 1 {
		t.Errorf("references %d (%v) after two Cleanups of one handler, want 1", refs, ok)
	}
	pools.Delete(key)
}

// readmeSyntaxNames lists the subdirectives (first words) of a syntax tree.
func readmeSyntaxNames(lines []string) map[string]bool {
	names := map[string]bool{}
	for _, line := range lines {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] == "}" || f[0] == "client_registration" || strings.HasPrefix(f[0], "#") {
			continue
		}
		names[f[0]] = true
	}
	return names
}

// TestREADMECaddyfiles adapts every ```caddyfile block of README.md: whole
// sites as they are, fragments of a site inside one, subdirective examples
// (storage ...) inside client_registration. The syntax reference must name
// exactly the subdirectives of UnmarshalCaddyfile's godoc, which
// TestUnmarshalCaddyfileSyntaxCovered checks against the parser.
func TestREADMECaddyfiles(t *testing.T) {
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("caddyfile.go")
	if err != nil {
		t.Fatal(err)
	}
	_, doc, _ := strings.Cut(string(src), "// UnmarshalCaddyfile sets up")
	doc, _, _ = strings.Cut(doc, "func (h *Handler) UnmarshalCaddyfile")
	var docLines []string
	for _, line := range strings.Split(doc, "\n") {
		if l := strings.TrimPrefix(line, "//"); strings.HasPrefix(l, "\t") {
			docLines = append(docLines, l)
		}
	}
	godoc := readmeSyntaxNames(docLines)

	indent := func(s string) string {
		return regexp.MustCompile(`(?m)^(.)`).ReplaceAllString(s, "\t$1")
	}
	blocks := regexp.MustCompile("(?ms)^```caddyfile\n(.*?)^```").FindAllStringSubmatch(string(b), -1)
	if len(blocks) < 5 {
		t.Fatalf("found %d caddyfile blocks in README.md", len(blocks))
	}
	adapted := 0
	for i, m := range blocks {
		block := m[1]
		name := fmt.Sprintf("README.md caddyfile block %d", i+1)
		first := strings.Fields(block)[0]
		var inputs []string
		switch {
		case strings.Contains(block, "<"):
			readme := readmeSyntaxNames(strings.Split(block, "\n"))
			if !reflect.DeepEqual(readme, godoc) {
				t.Errorf("%s (the syntax reference) names %v;\nthe godoc of UnmarshalCaddyfile names %v", name, slices.Sorted(maps.Keys(readme)), slices.Sorted(maps.Keys(godoc)))
			}
			continue
		case first == "storage":
			// Alternatives, one client_registration each.
			for _, alt := range regexp.MustCompile(`(?ms)^storage .*?^\}\n`).FindAllString(block, -1) {
				inputs = append(inputs, "http://localhost:9080 {\n\tclient_registration {\n"+indent(indent(alt))+"\t}\n}\n")
			}
		case !strings.ContainsAny(first, ".:"):
			// A directive or a matcher, not a site address.
			inputs = append(inputs, "example.com {\n"+indent(block)+"}\n")
		default:
			inputs = append(inputs, block)
		}
		for _, in := range inputs {
			out := cfAdapt(t, name, in)
			adapted++
			// Each handler must load from the JSON exactly as adapted.
			n := 0
			for _, h := range regexp.MustCompile(`\{[^{}]*"handler":"client_registration"`).FindAllStringIndex(string(out), -1) {
				var hv Handler
				dec := json.NewDecoder(bytes.NewReader(out[h[0]:]))
				dec.DisallowUnknownFields()
				var raw map[string]json.RawMessage
				if err := dec.Decode(&raw); err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				delete(raw, "handler")
				rb, _ := json.Marshal(raw)
				dec = json.NewDecoder(bytes.NewReader(rb))
				dec.DisallowUnknownFields()
				if err := dec.Decode(&hv); err != nil {
					t.Errorf("%s: adapted handler does not decode: %v\n%s", name, err, rb)
				} else if err := hv.Validate(); err != nil {
					t.Errorf("%s: adapted handler does not validate: %v", name, err)
				}
				n++
			}
			if n == 0 && strings.Contains(in, "client_registration") {
				t.Errorf("%s: found no client_registration handler in\n%s", name, out)
			}
		}
	}
	if adapted < 8 {
		t.Errorf("adapted only %d Caddyfiles from README.md", adapted)
	}
}

// TestREADMEJSON decodes the README's JSON handler examples strictly (no
// unknown or misspelt field), validates them, and checks that together they
// show every field of the JSON config.
func TestREADMEJSON(t *testing.T) {
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	var collect func(v any)
	collect = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, e := range v {
				seen[k] = true
				collect(e)
			}
		case []any:
			for _, e := range v {
				collect(e)
			}
		}
	}
	n := 0
	for _, m := range regexp.MustCompile("(?ms)^```json\n(.*?)^```").FindAllStringSubmatch(string(b), -1) {
		if !strings.Contains(m[1], `"handler": "client_registration"`) {
			continue
		}
		n++
		var raw map[string]any
		if err := json.Unmarshal([]byte(m[1]), &raw); err != nil {
			t.Fatalf("README JSON example %d: %v\n%s", n, err, m[1])
		}
		collect(raw)
		delete(raw, "handler")
		rb, _ := json.Marshal(raw)
		var h Handler
		dec := json.NewDecoder(bytes.NewReader(rb))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&h); err != nil {
			t.Errorf("README JSON example %d: %v", n, err)
			continue
		}
		if err := h.Validate(); err != nil {
			t.Errorf("README JSON example %d does not validate: %v", n, err)
		}
	}
	if n == 0 {
		t.Fatal("no JSON handler example in README.md")
	}
	var fields func(typ reflect.Type)
	fields = func(typ reflect.Type) {
		for typ.Kind() == reflect.Pointer || typ.Kind() == reflect.Slice {
			typ = typ.Elem()
		}
		if typ.Kind() != reflect.Struct || typ.PkgPath() != reflect.TypeOf(Handler{}).PkgPath() {
			return
		}
		for i := range typ.NumField() {
			f := typ.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if !f.IsExported() || name == "" || name == "-" {
				continue
			}
			if !seen[name] {
				t.Errorf("the README's JSON examples do not show %s.%s (%q)", typ.Name(), f.Name, name)
			}
			fields(f.Type)
		}
	}
	fields(reflect.TypeOf(Handler{}))
}

// FuzzUnmarshalCaddyfile: no Caddyfile input makes the parser panic, and
// what it accepts survives the JSON round trip the adapter does and passes
// Validate. `go test -fuzz FuzzUnmarshalCaddyfile` explores further.
func FuzzUnmarshalCaddyfile(f *testing.F) {
	f.Add(cfEveryInput)
	f.Add(cfRFC7591Input)
	f.Add("client_registration {\n\tstorage redis {\n\t\ttls insecure_skip_verify {\n\t\t\tca_file x\n\t\t}\n\t}\n}")
	f.Add("client_registration {\n\tsoftware_statement {\n\t\tissuer i {\n\t\t\tsecret 0123456789abcdef0123456789abcdef\n\t\t}\n\t}\n}")
	f.Add("client_registration {\n\tstorage caddy {\n\t}\n\trate_limit off\n}")
	f.Add("client_registration {\n\tprefix /x {\n\t}\n}")
	f.Add("client_registration {\n\tstorage redis {\n\t\t}\n\t}\n}")
	f.Add("client_registration {\n\t}\n\t}\n}")
	f.Add("client_registration {\n\tstorage\n\tredis {\n\t}\n}")
	f.Fuzz(func(t *testing.T, input string) {
		// Not NewTestDispenser: it exits the process on input the lexer
		// refuses (an unterminated quote, a bad heredoc), which Caddy
		// reports as an error before any directive sees it.
		tokens, err := caddyfile.Tokenize([]byte(input), "Caddyfile")
		if err != nil {
			return
		}
		var h Handler
		if err := h.UnmarshalCaddyfile(caddyfile.NewDispenser(tokens)); err != nil {
			return
		}
		b, err := json.Marshal(h)
		if err != nil {
			t.Fatal(err)
		}
		var back Handler
		if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(back, h) {
			t.Fatalf("JSON round trip: %v\n%s", err, b)
		}
		if err := back.Validate(); err != nil {
			t.Fatalf("accepted by the parser, refused by Validate: %v\n%q", err, input)
		}
	})
}

func cfBool(b bool) *bool { return &b }

// TestRedisOptionsResolved: addresses are checked again once placeholders
// are resolved, and redis:// URLs give their credentials, database and TLS.
func TestRedisOptionsResolved(t *testing.T) {
	repl := caddy.NewReplacer()
	for _, tc := range []struct {
		addrs []string
		env   string
		want  string // error, or "" for none
	}{
		{[]string{"{env.DCR_TEST_ADDR}"}, "localhost", `address {env.DCR_TEST_ADDR} resolves to a value that is not host:port`},
		{[]string{"{env.DCR_TEST_ADDR}"}, "hunter2", `address {env.DCR_TEST_ADDR} resolves to a value that is not host:port`},
		{[]string{"{env.DCR_TEST_ADDR}"}, "", `address {env.DCR_TEST_ADDR} resolves to an empty value`},
		{[]string{"{env.DCR_TEST_ADDR}"}, "redis://app@r:6379", "with a user needs a password"},
		{[]string{"{env.DCR_TEST_ADDR}"}, "redis://:@r:6379", "with an @ needs a password before it"},
		{[]string{"redis://:pw{bogus.x}@r:6379"}, "", "address: a placeholder in it resolves to an empty string"},
		{[]string{"{env.DCR_TEST_ADDR}", "{env.DCR_TEST_UNSET_ADDR}"}, "r1:6379", "address {env.DCR_TEST_UNSET_ADDR} resolves to an empty value"},
		{[]string{"{env.DCR_TEST_ADDR}"}, "redis://:pa/ss#hunter2@r:6379", "not a valid redis:// URL"},
		{[]string{"{env.DCR_TEST_ADDR}"}, "redis://:hunter2%zz@r:6379", "not a valid redis:// URL"},
		{[]string{"{env.DCR_TEST_ADDR}"}, "redis://::1", "IPv6 address in brackets"},
		{[]string{"{env.DCR_TEST_ADDR}"}, "redis://r:99999", "port of a redis:// address"},
		{[]string{"{env.DCR_TEST_ADDR}"}, "redis://r:", "port of a redis:// address"},
		{[]string{"{env.DCR_TEST_ADDR}"}, "redis://r//2", "database number"},
		{[]string{"{env.DCR_TEST_ADDR}"}, "redis://r/+3", "database number"},
		{[]string{"{env.DCR_TEST_ADDR}"}, "user:hunter2@r:6379", "resolves to a value that is not host:port"},
		{[]string{"{env.DCR_TEST_ADDR}"}, "redis://:hunter2@r:6379?x=1", "options in a redis:// address"},
		{[]string{"{env.DCR_TEST_ADDR}", "r2:6379"}, "redis://r1:6379", "every address as a redis:// URL or none"},
		{[]string{"redis://:a@r1:6379", "redis://:b@r2:6379"}, "", "differ in scheme, credentials or database"},
		{[]string{"redis://r1:6379/1", "redis://r2:6379/1"}, "", "db must be 0 with a cluster"},
		{[]string{"{env.DCR_TEST_ADDR}", "r1:6379"}, "r1:6379", "addresses 1 and 2 are the same"},
		{[]string{"redis://:hunter2@r1:6379", "{env.DCR_TEST_ADDR}"}, "redis://:hunter2@r1:6379", "are the same"},
	} {
		t.Setenv("DCR_TEST_ADDR", tc.env)
		_, err := (&RedisConfig{Address: tc.addrs}).options(repl)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%v with %q: error %v, want %q (and no password)", tc.addrs, tc.env, err, tc.want)
		}
	}
	// Credentials from placeholders that resolve to nothing: a warning (an
	// empty password may be meant), never the value; an empty master_name
	// would turn Sentinel into a single node: refused.
	t.Setenv("DCR_TEST_EMPTY", "")
	for _, rc := range []RedisConfig{
		{Address: []string{"r:1"}, Password: "{env.DCR_TEST_EMPTY}"},
		{Address: []string{"r:1"}, Password: "{file./nonexistent/dcr-password}"},
		{Address: []string{"r:1"}, Password: "{hunter2}"},
		{Address: []string{"r:1"}, Username: "{env.DCR_TEST_EMPTY}", Password: "x"},
		{Address: []string{"r:1"}, MasterName: "m", SentinelPassword: "{env.DCR_TEST_EMPTY}"},
	} {
		o, err := rc.options(repl)
		if err != nil || len(o.warnings) != 1 || !strings.Contains(o.warnings[0], "resolves to an empty value") || strings.Contains(o.warnings[0], "hunter2") {
			t.Errorf("%+v: error %v, warnings %q", rc, err, o.warnings)
		}
	}
	if _, err := (&RedisConfig{Address: []string{"r:1"}, MasterName: "{env.DCR_TEST_EMPTY}"}).options(repl); err == nil || !strings.Contains(err.Error(), "master_name {env.DCR_TEST_EMPTY} resolves to an empty value") {
		t.Errorf("empty master_name: %v", err)
	}
	if _, err := (&RedisConfig{Address: []string{"r:1"}, Password: ""}).options(repl); err != nil {
		t.Errorf("no password: %v", err)
	}
	// An unset TLS file or server name would quietly mean the system's
	// CAs, no client certificate or the address's host name: refused.
	for _, tc := range []RedisTLS{{CAFile: "{env.DCR_TEST_EMPTY}"}, {CertFile: "{env.DCR_TEST_EMPTY}", KeyFile: "{env.DCR_TEST_EMPTY}"}, {ServerName: "{env.DCR_TEST_EMPTY}"}} {
		if _, err := (&RedisConfig{Address: []string{"r:1"}, TLS: &tc}).options(repl); err == nil || !strings.Contains(err.Error(), "{env.DCR_TEST_EMPTY} resolves to an empty value") {
			t.Errorf("%+v: %v", tc, err)
		}
	}
	t.Setenv("DCR_TEST_ADDR", "rediss://app:s3cret@cache.example:6380/4")
	o, err := (&RedisConfig{Address: []string{"{env.DCR_TEST_ADDR}"}}).options(repl)
	if err != nil || o.Addrs[0] != "cache.example:6380" || o.Username != "app" || o.Password != "s3cret" || o.DB != 4 ||
		o.TLS == nil || o.TLS.ServerName != "cache.example" || o.TLS.InsecureSkipVerify {
		t.Fatalf("%+v %v", o, err)
	}
	// IPv6 in brackets; REDIS:// in capitals; a cluster of rediss:// URLs
	// checks each node against its own name.
	o, err = (&RedisConfig{Address: []string{"REDISS://:pw@[::1]:7000", "rediss://:pw@[::1]:7001"}}).options(repl)
	if err != nil || o.Addrs[0] != "[::1]:7000" || o.Addrs[1] != "[::1]:7001" || o.Password != "pw" || o.TLS == nil || o.TLS.ServerName != "" {
		t.Fatalf("%+v %v", o, err)
	}
	// Subdirectives win over the URL; a plain port defaults to 6379.
	o, err = (&RedisConfig{Address: []string{"redis://app:s3cret@cache.example/4"}, Password: "other", DB: 2}).options(repl)
	if err != nil || o.Addrs[0] != "cache.example:6379" || o.Password != "other" || o.Username != "" || o.DB != 2 || o.TLS != nil {
		t.Fatalf("%+v %v", o, err)
	}
}

// FuzzRedisAddress: no address makes the check panic, and a refusal never
// repeats what comes before an "@" (user and password).
func FuzzRedisAddress(f *testing.F) {
	for _, s := range []string{"r:6379", "redis://:pw@r:6379/1", "rediss://u:p@[::1]:7000", "redis://::1", "u:p@r:1", "/tmp/r.sock", "redis://:p%zz@r"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := checkRedisAddress(s)
		if err == nil {
			return
		}
		if i := strings.LastIndex(s, "@"); i >= 0 {
			start := 0
			if j := strings.Index(s[:i], "://"); j >= 0 {
				start = j + 3
			}
			cred := s[start:i]
			if len(cred) < 4 || !strings.Contains(err.Error(), cred) {
				return
			}
			// Shown, unless the message says it whatever the credentials.
			masked := s[:start] + strings.Repeat("Q", len(cred)) + s[i:]
			if err2 := checkRedisAddress(masked); err2 == nil || !strings.Contains(err2.Error(), cred) {
				t.Fatalf("%q: error %q shows %q", s, err, cred)
			}
		}
	})
}

func TestCheckIssuerPlaceholders(t *testing.T) {
	for _, v := range []string{
		"https://{http.request.host}", "https://{http.request.host}/oauth", "{http.request.scheme}://{http.request.hostport}",
		"https://{http.request.host}:{http.request.port}/x", "{env.ISSUER}", "{http.request.header.X-Issuer}", "https://auth.example",
		"{file./run/secrets/issuer}", "https://[{env.V6}]:8443/oauth", "https://auth.{http.request.header.X-Tenant}/", "https://a.{http.vars.d}:8443/oauth",
	} {
		if err := checkIssuer(v); err != nil {
			t.Errorf("checkIssuer(%q): %v", v, err)
		}
	}
	for _, v := range []string{"{http.request.host}", "{http.request.host}/oauth", "ftp://{host}", "https://{host}#x", "https://a.example#", "https://a.example/?", "https://{host}/oauth#",
		"https://a.example/a/../oauth", "https://a.example/./oauth", "https://{http.request.host}/..", "https://a.example/%2e%2E/x",
		"https://a.example/a\\b", "https://a.example\\oauth", "https://a.example/%2fx", "https://xn--/x", "https://xn--.example/x", "https://a.xn--/x", "https://1.2.3.4.5/x", "https://a.1/x", "https://[fe80::1%25eth0]/x",
		"https://a.1:{http.request.port}/x", "https://[fe80::1%25eth0]:{http.request.port}/x", "https://a.example/x%zz", "https://b%C3%BCcher.example/"} {
		if err := checkIssuer(v); err == nil {
			t.Errorf("checkIssuer(%q) accepted", v)
		}
	}
}

// TestPolicyWarning: a policy that shuts IAM out entirely, or allows
// values no registration can carry, is worth a warning when the config
// loads (not an error: see policyWarnings).
func TestPolicyWarning(t *testing.T) {
	for _, tc := range []struct {
		h    Handler
		want string
	}{
		{Handler{API: "iam", AllowedAuthMethods: []string{"none"}}, "IAM clients always use client_secret_post"},
		{Handler{API: "iam", AllowedGrantTypes: []string{"client_credentials"}}, "none of IAM's grant types"},
		{Handler{API: "iam", AllowedAuthMethods: []string{"none", "client_secret_post"}, AllowedGrantTypes: []string{"authorization_code"}}, ""},
		{Handler{API: "rfc7591", AllowedAuthMethods: []string{"none"}}, ""},
		{Handler{API: "rfc7591", AllowedGrantTypes: []string{"authorization_code", "implicit"}, AllowedResponseTypes: []string{"code"}}, `"implicit" is never registered`},
		{Handler{API: "rfc7591", AllowedGrantTypes: []string{"authorization_code"}, AllowedResponseTypes: []string{"code", "token"}}, `allowed_response_types: "token" is never registered`},
		{Handler{API: "mediagoblin", AllowedGrantTypes: []string{"authorization_code"}, AllowedResponseTypes: []string{"code", "token"}}, ""},
		{Handler{API: "mediagoblin", CORS: []string{"https://a.example"}}, "cors: the mediagoblin API sends MediaGoblin's own CORS headers"},
		{Handler{API: "mediagoblin", Registration: "user", CORS: []string{"https://a.example"}}, ""},
		{Handler{API: "iam", SoftwareStatement: &SoftwareStatementConfig{}}, "the iam API takes no software statements"},
		{Handler{API: "rfc7591", CORS: []string{"*"}, SoftwareStatement: &SoftwareStatementConfig{}}, ""},
		// The cloned APIs fix what they register: lists that leave it out
		// refuse every registration, or every one of a kind.
		{Handler{API: "mediagoblin", AllowedAuthMethods: []string{"none"}}, "client_secret_basic is not allowed here: every mediagoblin registration will be refused"},
		{Handler{API: "mediagoblin", AllowedGrantTypes: []string{"client_credentials"}}, "every mediagoblin registration will be refused"},
		{Handler{API: "kustvakt", AllowedAuthMethods: []string{"private_key_jwt"}}, "every kustvakt registration will be refused"},
		{Handler{API: "kustvakt", AllowedAuthMethods: []string{"none"}}, "every CONFIDENTIAL kustvakt registration will be refused"},
		{Handler{API: "kustvakt", AllowedGrantTypes: []string{"authorization_code"}}, "grant type refresh_token is not allowed here, and"},
		{Handler{API: "kustvakt", AllowedAuthMethods: []string{"none", "client_secret_basic"}, AllowedGrantTypes: []string{"authorization_code", "refresh_token"}}, ""},
		{Handler{API: "kustvakt", DefaultScope: "openid"}, "the kustvakt API registers clients without a scope"},
		{Handler{API: "mediagoblin", AllowedScopes: []string{"a"}}, "the mediagoblin API registers clients without a scope"},
	} {
		got := strings.Join(tc.h.policyWarnings(), "; ")
		if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("%s %v %v: %q, want %q", tc.h.API, tc.h.AllowedAuthMethods, tc.h.AllowedGrantTypes, got, tc.want)
		}
	}
}

// TestIssuerPathWarnedAtLoad: an issuer whose path does not end with the
// prefix gets a warning when the config loads, since a client that follows
// the metadata sends nothing the handler's own check would see; a path
// longer than the prefix (a handle_path in front) and request placeholders
// in the path get none, and the cloned APIs are not checked.
func TestIssuerPathWarnedAtLoad(t *testing.T) {
	t.Setenv("DCR_TEST_ISSUER", "https://auth.example")
	for _, tc := range []struct {
		h    Handler
		warn bool
	}{
		{Handler{Issuer: "https://auth.example", Prefix: "/oauth"}, true},
		{Handler{Issuer: "{env.DCR_TEST_ISSUER}", Prefix: "/oauth"}, true},
		{Handler{Issuer: "https://auth.example/other/", Prefix: "/oauth"}, true},
		{Handler{Issuer: "https://auth.example/oauth/", Prefix: "/oauth/"}, false},
		{Handler{Issuer: "https://auth.example/Tenant/oauth", Prefix: "/oauth"}, false},
		{Handler{Issuer: "https://auth.example/oauth", Prefix: "/OAuth"}, true},
		{Handler{Issuer: "https://auth.example/%C3%A9", Prefix: "/é"}, false},
		{Handler{Issuer: "https://auth.example/tenant", Prefix: ""}, false},
		{Handler{Issuer: "https://auth.example/{http.request.uri.path.0}", Prefix: "/oauth"}, false},
		{Handler{Issuer: "https://auth.example", Prefix: ""}, false},
		{Handler{API: "kustvakt", Issuer: "https://auth.example"}, false},
		{Handler{API: "iam", Issuer: "https://auth.example", Prefix: "/iam"}, false},
	} {
		core, logs := observer.New(zapcore.WarnLevel)
		tc.h.logger = zap.New(core)
		got := tc.h.warnIssuerPath(caddy.NewReplacer())
		if got != tc.warn || logs.FilterMessageSnippet("does not end with the prefix").Len() != map[bool]int{true: 1}[tc.warn] {
			t.Errorf("issuer %q prefix %q api %q: warned %v, want %v", tc.h.Issuer, tc.h.Prefix, tc.h.API, got, tc.warn)
		}
	}
}

// TestStatementAudienceWarnedAtLoad: trusted software statements with an
// issuer whose host comes from each request get a warning at load, since
// a statement's aud is then checked against a host name the client sends.
func TestStatementAudienceWarnedAtLoad(t *testing.T) {
	t.Setenv("DCR_TEST_ISSUER", "https://auth.example")
	statements := &SoftwareStatementConfig{}
	for _, tc := range []struct {
		h    Handler
		warn bool
	}{
		{Handler{SoftwareStatement: statements}, true},
		{Handler{SoftwareStatement: statements, Issuer: "https://{http.request.hostport}/oauth"}, true},
		{Handler{SoftwareStatement: statements, Issuer: "{env.DCR_TEST_UNSET_ISSUER}"}, true},
		{Handler{SoftwareStatement: statements, Issuer: "https://auth.example/{http.request.uri.path.0}"}, false},
		{Handler{SoftwareStatement: statements, Issuer: "{env.DCR_TEST_ISSUER}"}, false},
		{Handler{SoftwareStatement: statements, Issuer: "https://auth.example"}, false},
		{Handler{}, false},
	} {
		core, logs := observer.New(zapcore.WarnLevel)
		tc.h.logger = zap.New(core)
		tc.h.warnStatementAudience(caddy.NewReplacer())
		if got := logs.FilterMessageSnippet("a statement's aud is checked against it").Len(); got != map[bool]int{true: 1}[tc.warn] {
			t.Errorf("issuer %q: %d warnings, want %v", tc.h.Issuer, got, tc.warn)
		}
	}
}

// TestLoadZone: the tz database's names load, including those with
// digits, '+', '-' and three parts; the host zoneinfo's other files and
// other spellings of zones do not.
func TestLoadZone(t *testing.T) {
	for _, ok := range []string{"UTC", "Europe/Berlin", "Etc/GMT+5", "Etc/GMT-14", "America/Argentina/Buenos_Aires", "America/Port-au-Prince", "EST5EDT", "Asia/Kathmandu"} {
		if loc, err := loadZone(ok); err != nil || loc.String() != ok {
			t.Errorf("%s: %v %v", ok, loc, err)
		}
	}
	for _, bad := range []string{"Local", "localtime", "Factory", "posixrules", "right/UTC", "posix/Europe/Berlin", "./UTC", "Europe//Berlin", "/usr/share/zoneinfo/UTC", "Europe/Berlin/", "../zoneinfo/UTC", "Mars/Olympus"} {
		if _, err := loadZone(bad); err == nil {
			t.Errorf("%s loaded", bad)
		}
	}
}
