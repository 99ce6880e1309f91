package handler

import "net/http"

// IAM serves Huawei Cloud IAM Identity Center's POST /v1/clients.
type IAM struct {
	o *Options
}

// NewIAM returns the IAM Identity Center API.
func NewIAM(o *Options) *IAM { return &IAM{o: o} }

// Serve implements API.
func (a *IAM) Serve(w http.ResponseWriter, r *http.Request) bool {
	return false // TODO: implemented in a later commit
}
