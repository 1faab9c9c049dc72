package api

import "github.com/writ-dev/writ"

// LeaseList is the answer of GET /v1/runs/{id}/credentials: a run's
// leases, without their credentials.
type LeaseList struct {
	Leases []*writ.Lease `json:"leases"`
}

// SecretList is the answer of GET /v1/secrets: names and versions only.
type SecretList struct {
	Secrets []*writ.Secret `json:"secrets"`
}

// SecretPut is the body of PUT /v1/secrets/{env}/{name}.
type SecretPut struct {
	Value string `json:"value"`
}

// SecretPutResponse answers PUT /v1/secrets/{env}/{name}: the secret's
// full name (env/name) and its new version.
type SecretPutResponse struct {
	Secret  string `json:"secret"`
	Version int    `json:"version"`
}

// SecretDeleteResponse answers DELETE /v1/secrets/{env}/{name}.
type SecretDeleteResponse struct {
	Secret  string `json:"secret"`
	Deleted bool   `json:"deleted"`
}
