package client

import (
	"bytes"
	"context"
	"encoding/json"

	"github.com/writ-dev/writ/api"
)

// DecideRequest asks the decision point about one action (docs/design.md §4.4).
// A run leaves Run empty; a human sets DryRun and Run.
type DecideRequest = api.DecideRequest

// Decision is the decision point's answer.
type Decision = api.DecideResponse

// Decide asks POST /v1/decide.
func (c *Client) Decide(ctx context.Context, req *DecideRequest) (*Decision, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	var d Decision
	if err := c.do(ctx, "POST", "/v1/decide", bytes.NewReader(body), &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// Outcome is what a caller reports after an allowed action ran.
type Outcome = api.OutcomeRequest

// ReportOutcome posts the outcome of decision id; with id empty, o names
// the call by Via and CallRef (POST /v1/outcomes).
func (c *Client) ReportOutcome(ctx context.Context, id string, o *Outcome) error {
	body, err := json.Marshal(o)
	if err != nil {
		return err
	}
	path := "/v1/outcomes"
	if id != "" {
		path = "/v1/decisions/" + id + "/outcome"
	}
	return c.do(ctx, "POST", path, bytes.NewReader(body), nil)
}
