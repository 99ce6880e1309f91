package caddydcr

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/caddyauth"
)

// This file tests the Caddyfile surface: UnmarshalCaddyfile on its own
// (tables over caddyfile.NewTestDispenser), whole Caddyfiles adapted to JSON
// (golden files in testdata/caddyfile_adapt), and the Caddyfiles the
// repository ships (Caddyfile.example, bench/Caddyfile). None of it starts
// a server.

func cfDuration(s string) *caddy.Duration {
	d, err := caddy.ParseDuration(s)
	if err != nil {
		panic(err)
	}
	cd := caddy.Duration(d)
	return &cd
}

func cfInt(n int) *int { return &n }

// cfEveryInput uses every subdirective of the syntax in UnmarshalCaddyfile's
// godoc; TestUnmarshalCaddyfileSyntaxCovered keeps it that way.
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
		tls insecure_skip_verify {
			ca_file /etc/redis/ca.pem
			cert_file /etc/redis/client.pem
			key_file /etc/redis/client.key
			server_name redis.internal
		}
		key_prefix app:
		timeout 1500ms
	}
	user {http.request.header.Remote-User}
	secret_lifetime 720h
	authorization_endpoint https://auth.example.com/authorize
	token_endpoint https://auth.example.com/token
	super_client korap {env.SUPER_SECRET}
	super_client public-super ""
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
		issuer https://other.example
	}
	require_software_statement
	allowed_redirect_hosts app.example *.apps.example
	max_redirect_uris 5
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
	cors https://app.example https://admin.example
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
			// An API name the module does not know is left to Validate,
			// which names the known ones.
			name: "unknown api is parsed", input: `client_registration oidc`, want: Handler{API: "oidc"},
		},
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
					Address:    []string{"10.0.0.1:6379", "10.0.0.2:6379", "10.0.0.3:6379"},
					Username:   "dcr",
					Password:   "{env.REDIS_PASSWORD}",
					DB:         2,
					MasterName: "mymaster",
					TLS: &RedisTLS{
						InsecureSkipVerify: true,
						CAFile:             "/etc/redis/ca.pem",
						CertFile:           "/etc/redis/client.pem",
						KeyFile:            "/etc/redis/client.key",
						ServerName:         "redis.internal",
					},
					KeyPrefix: "app:",
					Timeout:   *cfDuration("1500ms"),
				}},
				SecretLifetime:        cfDuration("720h"),
				AuthorizationEndpoint: "https://auth.example.com/authorize",
				TokenEndpoint:         "https://auth.example.com/token",
				SuperClients: []SuperClient{
					{ClientID: "korap", Secret: "{env.SUPER_SECRET}"},
					{ClientID: "public-super", Secret: ""},
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
					{Issuer: "https://other.example"},
				}},
				RequireSoftwareStatement: true,
				AllowedRedirectHosts:     []string{"app.example", "*.apps.example"},
				MaxRedirectURIs:          5,
				AllowedGrantTypes:        []string{"authorization_code", "refresh_token"},
				AllowedResponseTypes:     []string{"code"},
				AllowedAuthMethods:       []string{"client_secret_basic", "private_key_jwt"},
				AllowedScopes:            []string{"openid", "profile", "email"},
				DefaultScope:             "openid profile",
				RateLimit:                &RateLimitConfig{Count: 30, Window: *cfDuration("10m")},
				MaxClients:               cfInt(500),
				MaxClientsPerOwner:       cfInt(0),
				ClientLifetime:           *cfDuration("8760h"),
				IdleLifetime:             *cfDuration("2160h"),
				CORS:                     []string{"https://app.example", "https://admin.example"},
			},
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
			input: "client_registration {\n\trate_limit off\n\tmax_clients off\n\tmax_clients_per_owner 0\n}",
			want:  Handler{RateLimit: &RateLimitConfig{}, MaxClients: cfInt(0), MaxClientsPerOwner: cfInt(0)},
		},
		{
			name:  "secret lifetime zero",
			input: "client_registration {\n\tsecret_lifetime 0s\n}",
			want:  Handler{SecretLifetime: cfDuration("0s")},
		},
		{
			name:  "redis without block is left to Validate",
			input: "client_registration {\n\tstorage redis\n}",
			want:  Handler{Storage: &StorageConfig{Redis: &RedisConfig{}}},
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
		{"extra argument after api", "client_registration iam extra", "wrong argument count"},
		{"extra argument on prefix", "client_registration {\n\tprefix /a /b\n}", "wrong argument count"},
		{"missing prefix argument", "client_registration {\n\tprefix\n}", "wrong argument count"},
		{"prefix twice", "client_registration {\n\tprefix /a\n\tprefix /b\n}", "prefix already specified"},
		{"issuer twice", "client_registration {\n\tissuer https://a\n\tissuer https://b\n}", "issuer already specified"},
		{"timezone twice", "client_registration {\n\ttimezone UTC\n\ttimezone UTC\n}", "timezone already specified"},
		{"admin_token twice", "client_registration {\n\tadmin_token a\n\tadmin_token b\n}", "admin_token already specified"},
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
		{"bad db", redis("db two"), "invalid db 'two'"},
		{"negative db", redis("db -1"), "invalid db '-1'"},
		{"db extra argument", redis("db 1 2"), "wrong argument count"},
		{"bad redis timeout", redis("timeout fast"), "invalid timeout 'fast'"},
		{"redis timeout extra", redis("timeout 1s 2s"), "wrong argument count"},
		{"tls unknown option", redis("tls verify_none"), "unknown tls option 'verify_none'"},
		{"tls twice", redis("tls\n\t\ttls"), "tls already specified"},
		{"tls unknown subdirective", redis("tls {\n\t\t\tca /x\n\t\t}"), "unrecognized tls subdirective 'ca'"},
		{"tls ca_file twice", redis("tls {\n\t\t\tca_file /a\n\t\t\tca_file /b\n\t\t}"), "ca_file already specified"},
		{"tls ca_file extra", redis("tls {\n\t\t\tca_file /a /b\n\t\t}"), "wrong argument count"},
		{"registration twice", "client_registration {\n\tregistration open\n\tregistration user\n}", "registration already specified"},
		{"registration extra", "client_registration {\n\tregistration open user\n}", "wrong argument count"},
		{"initial_access_token empty", "client_registration {\n\tinitial_access_token\n}", "wrong argument count"},
		{"cors empty", "client_registration {\n\tcors\n}", "wrong argument count"},
		{"allowed_scopes empty", "client_registration {\n\tallowed_scopes\n}", "wrong argument count"},
		{"default_scope twice", "client_registration {\n\tdefault_scope a\n\tdefault_scope b\n}", "default_scope already specified"},
		{"default_scope empty", "client_registration {\n\tdefault_scope\n}", "wrong argument count"},
		{"require_software_statement argument", "client_registration {\n\trequire_software_statement yes\n}", "wrong argument count"},
		{"software_statement argument", "client_registration {\n\tsoftware_statement x\n}", "wrong argument count"},
		{"software_statement unknown", "client_registration {\n\tsoftware_statement {\n\t\tkey /k\n\t}\n}", "unrecognized software_statement subdirective 'key'"},
		{"software_statement issuer unknown", "client_registration {\n\tsoftware_statement {\n\t\tissuer i {\n\t\t\talg RS256\n\t\t}\n\t}\n}", "unrecognized software_statement issuer subdirective 'alg'"},
		{"software_statement issuer missing", "client_registration {\n\tsoftware_statement {\n\t\tissuer\n\t}\n}", "wrong argument count"},
		{"software_statement secret twice", "client_registration {\n\tsoftware_statement {\n\t\tissuer i {\n\t\t\tsecret a\n\t\t\tsecret b\n\t\t}\n\t}\n}", "secret already specified"},
		{"software_statement key empty", "client_registration {\n\tsoftware_statement {\n\t\tissuer i {\n\t\t\tkey\n\t\t}\n\t}\n}", "wrong argument count"},
		{"max_redirect_uris off", "client_registration {\n\tmax_redirect_uris off\n}", "invalid max_redirect_uris 'off'"},
		{"max_redirect_uris negative", "client_registration {\n\tmax_redirect_uris -1\n}", "invalid max_redirect_uris '-1'"},
		{"max_clients bad", "client_registration {\n\tmax_clients many\n}", "invalid max_clients 'many'"},
		{"max_clients extra", "client_registration {\n\tmax_clients 1 2\n}", "wrong argument count"},
		{"max_clients_per_owner missing", "client_registration {\n\tmax_clients_per_owner\n}", "wrong argument count"},
		{"rate_limit one argument", "client_registration {\n\trate_limit 60\n}", "rate_limit takes a count and a window"},
		{"rate_limit three arguments", "client_registration {\n\trate_limit 60 1h 2\n}", "rate_limit takes a count and a window"},
		{"rate_limit zero count", "client_registration {\n\trate_limit 0 1h\n}", "invalid rate_limit count '0'"},
		{"rate_limit bad window", "client_registration {\n\trate_limit 60 hourly\n}", "invalid rate_limit window 'hourly'"},
		{"rate_limit twice", "client_registration {\n\trate_limit off\n\trate_limit 1 1h\n}", "rate_limit already specified"},
		{"client_lifetime bad", "client_registration {\n\tclient_lifetime forever\n}", "invalid client_lifetime 'forever'"},
		{"idle_lifetime extra", "client_registration {\n\tidle_lifetime 1h 2h\n}", "wrong argument count"},
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
			// Errors made with d.Err* name the file and line.
			if !strings.Contains(err.Error(), "Testfile:") {
				t.Errorf("error %q has no file:line", err)
			}
		})
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
		"authentication", "client_registration:kustvakt", "static_response"}
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
	for _, line := range strings.Split(cfEveryInput, "\n") {
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
			t.Errorf("the godoc syntax has %q, which cfEveryInput does not use", f[0])
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
		"prefix \"\"\n\tprefix /x", "db 1\n\t\tdb 2", "timeout 1s\n\t\ttimeout 2s", "max_clients 1\n\tmax_clients 2",
		"max_redirect_uris 1\n\tmax_redirect_uris 2", "client_lifetime 1h\n\tclient_lifetime 2h",
		"idle_lifetime 1h\n\tidle_lifetime 2h", "require_software_statement\n\trequire_software_statement",
		"super_client a x\n\tsuper_client a y", "registration open\n\tregistration token",
	} {
		body := in
		if strings.HasPrefix(in, "db") || strings.HasPrefix(in, "timeout") {
			body = "storage redis {\n\t\taddress x:1\n\t\t" + in + "\n\t}"
		}
		d := caddyfile.NewTestDispenser("client_registration {\n\t" + body + "\n}")
		if err := new(Handler).UnmarshalCaddyfile(d); err == nil || !strings.Contains(err.Error(), "already specified") {
			t.Errorf("%q: %v", in, err)
		}
	}
	d := caddyfile.NewTestDispenser("client_registration {\n\tstorage redis {\n\t\taddress x:1\n\t\ttls insecure_skip_verify insecure_skip_verify\n\t}\n}")
	if err := new(Handler).UnmarshalCaddyfile(d); err == nil {
		t.Error("repeated tls option accepted")
	}
	d = caddyfile.NewTestDispenser("client_registration {\n\tsoftware_statement {\n\t\tissuer a {\n\t\t\tsecret x\n\t\t}\n\t\tissuer a {\n\t\t\tsecret y\n\t\t}\n\t}\n}")
	if err := new(Handler).UnmarshalCaddyfile(d); err == nil {
		t.Error("repeated issuer accepted")
	}
}
