package client

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"

	"github.com/writ-dev/writ/api"
)

// WithToken returns a copy of c that sends tok (a refreshed token bound
// to the same DPoP key, when c has one).
func (c *Client) WithToken(tok string) *Client {
	cc := *c
	cc.token = tok
	return &cc
}

// Heartbeat is the answer to a run's heartbeat.
type Heartbeat = api.HeartbeatResponse

// Heartbeat tells writ the run's launcher is alive (POST
// /v1/runs/{id}/heartbeat); it works while the run is suspended too.
func (c *Client) Heartbeat(ctx context.Context, run string) (*Heartbeat, error) {
	var hb Heartbeat
	err := c.do(ctx, http.MethodPost, "/v1/runs/"+url.PathEscape(run)+"/heartbeat", nil, &hb)
	return &hb, err
}

// KillSwitch says what a kill switch did.
type KillSwitch = api.KillSwitchResponse

func reasonBody(reason string) *bytes.Reader {
	b, _ := json.Marshal(api.KillSwitchRequest{Reason: reason})
	return bytes.NewReader(b)
}

// DisableAgent disables an agent (admins): its live runs are killed and
// no new run of it starts until EnableAgent.
func (c *Client) DisableAgent(ctx context.Context, name, reason string) (*KillSwitch, error) {
	var out KillSwitch
	err := c.do(ctx, http.MethodPost, "/v1/agents/"+url.PathEscape(name)+"/disable", reasonBody(reason), &out)
	return &out, err
}

// EnableAgent lifts an agent's disabling (admins).
func (c *Client) EnableAgent(ctx context.Context, name string) (*KillSwitch, error) {
	var out KillSwitch
	err := c.do(ctx, http.MethodPost, "/v1/agents/"+url.PathEscape(name)+"/enable", nil, &out)
	return &out, err
}

// Freeze suspends every active run and refuses run starts until
// Unfreeze (admins).
func (c *Client) Freeze(ctx context.Context, reason string) (*KillSwitch, error) {
	var out KillSwitch
	err := c.do(ctx, http.MethodPost, "/v1/freeze", reasonBody(reason), &out)
	return &out, err
}

// Unfreeze lifts the freeze and resumes the runs it suspended (admins).
func (c *Client) Unfreeze(ctx context.Context) (*KillSwitch, error) {
	var out KillSwitch
	err := c.do(ctx, http.MethodDelete, "/v1/freeze", nil, &out)
	return &out, err
}

// FreezeState reads the kill switches.
func (c *Client) FreezeState(ctx context.Context) (*KillSwitch, error) {
	var out KillSwitch
	err := c.do(ctx, http.MethodGet, "/v1/freeze", nil, &out)
	return &out, err
}
