package handler

import "net/http"

// MediaGoblin serves GNU MediaGoblin's POST /api/client/register.
type MediaGoblin struct {
	o *Options
}

// NewMediaGoblin returns the MediaGoblin API.
func NewMediaGoblin(o *Options) *MediaGoblin { return &MediaGoblin{o: o} }

// Serve implements API.
func (a *MediaGoblin) Serve(w http.ResponseWriter, r *http.Request) bool {
	return false // TODO: implemented in a later commit
}
