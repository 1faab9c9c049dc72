package writ

import (
	"encoding/json"
	"fmt"
	"time"
)

// Trigger API version and kind, and the DSSE payload type of a trigger.
const (
	TriggerAPIVersion  = "writ.dev/v1"
	TriggerKind        = "Trigger"
	TriggerPayloadType = "application/vnd.writ.trigger.v1+json"
	TriggerSSHNS       = "writ-trigger"
)

// Trigger is the signed task mandate that starts a run (docs/design.md §4.1).
// Its JSON form is the signed payload; it is decoded strictly from the exact
// signed bytes.
type Trigger struct {
	APIVersion string    `json:"apiVersion"`
	Kind       string    `json:"kind"`
	ID         string    `json:"id"`
	IssuedAt   time.Time `json:"issuedAt"`
	ExpiresAt  time.Time `json:"expiresAt"`
	Issuer     string    `json:"issuer"`
	Agent      string    `json:"agent"`
	Profile    string    `json:"profile"`
	Ticket     Ticket    `json:"ticket"`
	Task       string    `json:"task"`
	Scope      Scope     `json:"scope"`
}

// Ticket names the work item a trigger comes from.
type Ticket struct {
	System string `json:"system"`
	ID     string `json:"id"`
	URL    string `json:"url,omitempty"`
}

// Scope is the upper bound of what a run may touch. Every field is a list of
// patterns (see [MatchPath], [MatchHost], [MatchTool]).
type Scope struct {
	Repos        []RepoScope `json:"repos"`
	Tools        []string    `json:"tools"`
	Hosts        []string    `json:"hosts"`
	Environments []string    `json:"environments"`
	Secrets      []string    `json:"secrets"`
	MaxDuration  Duration    `json:"maxDuration"`
}

// RepoScope is one repository a run may use: its base branch, whether it may
// push, and the paths it may change.
type RepoScope struct {
	Name  string   `json:"name"`
	Base  string   `json:"base"`
	Write bool     `json:"write"`
	Paths []string `json:"paths"`
}

// Duration is a time.Duration written as a Go duration string ("30m") in
// JSON and YAML.
type Duration time.Duration

// MarshalJSON writes d as a duration string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON reads a duration string such as "30m" or "1h30m".
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string such as \"30m\"")
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q: %w", s, err)
	}
	*d = Duration(v)
	return nil
}

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// TriggerRecord is what the store keeps of an accepted trigger: its id (the
// replay nonce, remembered until it expires), digest and signer.
type TriggerRecord struct {
	ID        string
	Digest    string
	Signer    string
	ExpiresAt time.Time
}
