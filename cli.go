package caddydcr

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
)

// The `caddy client-registration` command: the admin API's routes (admin.go)
// from the command line, against a running Caddy, the way `caddy reload`
// and `caddy stop` reach it.
func init() {
	fs := flag.NewFlagSet("client-registration", flag.ExitOnError)
	fs.String("address", "", "the admin API's address (default: from --config, else from a Caddyfile in the current directory, else localhost:2019)")
	fs.String("config", "", "the config file to read the admin address from")
	fs.String("adapter", "", "the adapter of --config")
	fs.String("store", "", "the store: a Redis key prefix, or caddy (needed when several are in use)")
	fs.String("owner", "", "clients: only this owner's")
	fs.String("api", "", "clients: only those registered through this API")
	fs.String("name", "", "issue-token: a name to recognise the token by")
	fs.String("expires-in", "", "issue-token: a lifetime such as 24h (default: none)")
	fs.Int("uses", 0, "issue-token: how many registrations it allows (default: no limit)")
	fs.Bool("off", false, "permit, super: take the flag away instead")
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "client-registration",
		Usage: "<action> [<id>] [--address <admin>] [--config <file> [--adapter <name>]] [--store <name>] [...]",
		Short: "Manages registered OAuth clients and initial access tokens of a running Caddy",
		Long: `
Manages the OAuth clients and initial access tokens of the client_registration
handlers of a running Caddy, through its admin API. Actions:

  clients [--owner <owner>] [--api <api>]   list clients, oldest first
  client <client_id>                         show one
  metadata <client_id>                       its RFC 7591 metadata (no credentials)
  delete <client_id>                         remove one (its credentials stop working)
  permit <client_id> [--off]                 approve a Kustvakt plugin client
  super <client_id> [--off]                  make a confidential client a super client
  issue-token [--name <name>] [--expires-in <duration>] [--uses <n>]
                                             issue an initial access token (shown once)
  tokens                                     list initial access tokens (not the tokens)
  revoke-token <id>                          revoke one

The admin address is --address, or the one in --config, or the one in a
Caddyfile in the current directory, or localhost:2019.
With several stores in use, choose one with --store (a Redis key prefix, or
caddy for the embedded store). Answers are printed as JSON. An id that
starts with '-' (clients registered before ids were kept from it) goes
after '--', flags before it: caddy client-registration delete --store dcr: -- -x1y2z3.`,
		Flags: fs,
		Func:  cmdClientRegistration,
	})
}

// cliAction is one action of the command: how many positional arguments it
// takes, the flags of its own it accepts, and the admin request it makes.
type cliAction struct {
	args    int
	flags   []string
	request func(fl caddycmd.Flags, args []string) (method, path string, body any)
}

// cliActionFlags are the flags of particular actions (--address, --config,
// --adapter and --store apply to all).
var cliActionFlags = []string{"owner", "api", "name", "expires-in", "uses", "off"}

var cliActions = map[string]cliAction{
	"clients": {0, []string{"owner", "api"}, func(fl caddycmd.Flags, _ []string) (string, string, any) {
		q := url.Values{}
		for _, k := range []string{"owner", "api"} {
			if v := fl.String(k); v != "" {
				q.Set(k, v)
			}
		}
		return http.MethodGet, "/client_registration/clients?" + q.Encode(), nil
	}},
	"client": {1, nil, func(_ caddycmd.Flags, args []string) (string, string, any) {
		return http.MethodGet, clientPath(args[0]), nil
	}},
	"metadata": {1, nil, func(_ caddycmd.Flags, args []string) (string, string, any) {
		return http.MethodGet, clientPath(args[0]) + "/metadata", nil
	}},
	"delete": {1, nil, func(_ caddycmd.Flags, args []string) (string, string, any) {
		return http.MethodDelete, clientPath(args[0]), nil
	}},
	"permit": {1, []string{"off"}, func(fl caddycmd.Flags, args []string) (string, string, any) {
		return http.MethodPatch, clientPath(args[0]), map[string]bool{"permitted": !fl.Bool("off")}
	}},
	"super": {1, []string{"off"}, func(fl caddycmd.Flags, args []string) (string, string, any) {
		return http.MethodPatch, clientPath(args[0]), map[string]bool{"super": !fl.Bool("off")}
	}},
	"issue-token": {0, []string{"name", "expires-in", "uses"}, func(fl caddycmd.Flags, _ []string) (string, string, any) {
		req := map[string]any{"name": fl.String("name"), "uses": fl.Int("uses")}
		if d := fl.String("expires-in"); d != "" {
			req["expires_in"] = d
		}
		return http.MethodPost, "/client_registration/initial_access_tokens", req
	}},
	"tokens": {0, nil, func(caddycmd.Flags, []string) (string, string, any) {
		return http.MethodGet, "/client_registration/initial_access_tokens", nil
	}},
	"revoke-token": {1, nil, func(_ caddycmd.Flags, args []string) (string, string, any) {
		return http.MethodDelete, "/client_registration/initial_access_tokens/" + url.PathEscape(args[0]), nil
	}},
}

// cliActionList names the actions in the order of the help text.
const cliActionList = "clients, client, metadata, delete, permit, super, issue-token, tokens or revoke-token"

func clientPath(id string) string { return "/client_registration/clients/" + url.PathEscape(id) }

func cmdClientRegistration(fl caddycmd.Flags) (int, error) {
	args := fl.Args()
	if len(args) == 0 {
		return exitFailed, fmt.Errorf("no action: use %s (caddy help client-registration)", cliActionList)
	}
	act, ok := cliActions[args[0]]
	if !ok {
		return exitFailed, fmt.Errorf("unknown action %q: use %s", args[0], cliActionList)
	}
	if len(args)-1 != act.args {
		what := "no argument"
		if act.args == 1 {
			what = "one argument, the id"
		}
		return exitFailed, fmt.Errorf("%s takes %s", args[0], what)
	}
	if act.args == 1 && strings.TrimSpace(args[1]) == "" {
		return exitFailed, fmt.Errorf("%s: the id is empty", args[0])
	}
	if act.args == 1 && (args[1] == "." || args[1] == "..") {
		// A dot segment in the admin URL would name another route (the
		// list); no client or token has such an id.
		return exitFailed, fmt.Errorf("%s: %q is not an id", args[0], args[1])
	}
	for _, f := range []string{"owner", "api"} {
		if fl.Changed(f) && fl.String(f) == "" {
			return exitFailed, fmt.Errorf("--%s is empty", f)
		}
	}
	for _, f := range cliActionFlags {
		if fl.Changed(f) && !slices.Contains(act.flags, f) {
			return exitFailed, fmt.Errorf("--%s does not apply to %s", f, args[0])
		}
	}
	method, path, body := act.request(fl, args[1:])
	path = strings.TrimSuffix(path, "?")
	if s := fl.String("store"); s != "" {
		sep := "?"
		if strings.Contains(path, "?") {
			sep = "&"
		}
		path += sep + "store=" + url.QueryEscape(s)
	}
	addr, err := adminAddress(fl)
	if err != nil {
		return exitFailed, fmt.Errorf("finding the admin API: %v", err)
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return exitFailed, err
		}
		rd = bytes.NewReader(b)
	}
	resp, err := caddycmd.AdminAPIRequest(addr, method, path, nil, rd)
	if err != nil {
		// The API names its query parameter; here it is a flag.
		return exitFailed, errors.New(strings.ReplaceAll(err.Error(), "choose one with ?store=", "choose one with --store"))
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		return exitFailed, fmt.Errorf("reading the answer: %v", err)
	}
	if strings.TrimSpace(string(out)) == "" {
		return 0, nil // 204: deleted, revoked
	}
	// Indented in the order the API wrote it.
	if pretty, err := json.MarshalIndent(json.RawMessage(out), "", "  "); err == nil {
		out = pretty
	}
	_, err = fmt.Println(strings.TrimSpace(string(out)))
	return 0, err
}

// exitFailed is the exit status of a failed action, as Caddy's own
// commands return it.
const exitFailed = 1

// adminAddress finds the admin endpoint as `caddy reload` does: --address,
// else the admin address of the config that --config names or, without
// it, of a Caddyfile in the current directory, else Caddy's default.
func adminAddress(fl caddycmd.Flags) (string, error) {
	if a := fl.String("address"); a != "" {
		return a, nil
	}
	cfg, file, _, err := caddycmd.LoadConfig(fl.String("config"), fl.String("adapter"))
	if err != nil {
		return "", err
	}
	return caddycmd.DetermineAdminAPIAddress("", cfg, file, fl.String("adapter"))
}
