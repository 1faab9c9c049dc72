package client

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/api"
)

// buildWait is how long Build waits for the server's answer.
const buildWait = 65 * time.Minute

// Build asks writ's builder to build a run's approved, merged commit with
// a configured recipe. A build that ran and failed is a result with State
// failed, not an error.
func (c *Client) Build(ctx context.Context, req *writ.BuildRequest) (*writ.BuildResult, error) {
	b, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	// A build runs for as long as its recipe's timeout: wait longer than
	// the client's usual minute.
	long := *c
	hc := *c.http
	hc.Timeout = buildWait
	long.http = &hc
	var out writ.BuildResult
	err = long.do(ctx, http.MethodPost, "/v1/builds", bytes.NewReader(b), &out)
	return &out, err
}

// Release asks the release gate to release an artifact to an environment
// as a release run's action.
func (c *Client) Release(ctx context.Context, req *writ.ReleaseRequest) (*writ.ReleaseResult, error) {
	b, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	var out writ.ReleaseResult
	err = c.do(ctx, http.MethodPost, "/v1/releases", bytes.NewReader(b), &out)
	return &out, err
}

// ArtifactTraceRun is one run of an artifact's chain.
type ArtifactTraceRun = api.ArtifactTraceRun

// ArtifactTrace is an artifact's chain: the runs that built and released
// it, and the build, release, deployment and alert events of its digest.
type ArtifactTrace = api.ArtifactTrace

// ArtifactTrace returns an artifact's chain from ticket to deployment.
func (c *Client) ArtifactTrace(ctx context.Context, digest string) (*ArtifactTrace, error) {
	var t ArtifactTrace
	err := c.do(ctx, http.MethodGet, "/v1/trace/"+digest, nil, &t)
	return &t, err
}

// ReportDeployment sends a signed deployment report (a DSSE envelope of
// a writ.DeploymentReport, payload type writ.DeploymentPayloadType).
func (c *Client) ReportDeployment(ctx context.Context, envelope []byte) (*writ.DeploymentResult, error) {
	var out writ.DeploymentResult
	err := c.do(ctx, http.MethodPost, "/v1/deployments", bytes.NewReader(envelope), &out)
	return &out, err
}
