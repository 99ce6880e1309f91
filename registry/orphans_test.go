package registry

import (
	"strings"
	"testing"
)

// TestOrphanHint: the clients among the records a stalled write may have
// left are named by their client ids with the command that removes them;
// the other records are counted.
func TestOrphanHint(t *testing.T) {
	got := OrphanHint("dcr:", []string{clientPrefix + "abc", iatPrefix + "hash", clientPrefix + "-x1"})
	want := `store "dcr:": clients abc -x1 (caddy client-registration delete --store dcr: -- <client_id>) 1 initial access tokens or Kustvakt installations`
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	if got := OrphanHint("it's me:", []string{clientPrefix + "a"}); !strings.Contains(got, `--store 'it'\''s me:' --`) {
		t.Errorf("a key prefix a shell would split: %s", got)
	}
}
