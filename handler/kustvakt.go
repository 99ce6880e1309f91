package handler

import (
	"net/http"
	"time"
)

// SuperClient is a Kustvakt super client declared in the configuration.
type SuperClient struct {
	ClientID   string
	SecretHash string // "" for a public super client
}

// KustvaktOptions are the Kustvakt-only settings.
type KustvaktOptions struct {
	SuperClients   []SuperClient
	Location       *time.Location
	AdminUsers     []string
	AdminTokenHash string
}

// Kustvakt serves KorAP Kustvakt's OAuth2 client services.
type Kustvakt struct {
	o *Options
	k KustvaktOptions
}

// NewKustvakt returns the Kustvakt API.
func NewKustvakt(o *Options, k KustvaktOptions) *Kustvakt { return &Kustvakt{o: o, k: k} }

// Serve implements API.
func (a *Kustvakt) Serve(w http.ResponseWriter, r *http.Request) bool {
	return false // TODO
}
