package server

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/internal/strictjson"
	"github.com/writ-dev/writ/trigger"
)

// fileDeployments is the deployments section of writ.yaml.
type fileDeployments struct {
	// Reporters are the system signers (signers[].kind: system) whose
	// signed reports POST /v1/deployments accepts.
	Reporters []string `json:"reporters"`
}

// deploySSHNamespace is the SSH signature namespace of deployment reports.
const deploySSHNamespace = "writ-deployment"

// deployRing is the key ring of the configured deployment reporters.
func (s *Server) deployRing() (*trigger.KeyRing, error) {
	ring := trigger.NewKeyRing()
	for _, name := range s.cfg.Deployments.Reporters {
		i := slices.IndexFunc(s.cfg.Signers, func(sc SignerConfig) bool { return sc.Name == name })
		if i < 0 || s.cfg.Signers[i].Kind != writ.SignerSystem {
			return nil, fmt.Errorf("deployments.reporters: %q is not a configured signer of kind system", name)
		}
		for _, k := range s.cfg.Signers[i].Keys {
			if _, err := ring.Add(name, k); err != nil {
				return nil, fmt.Errorf("deployments.reporters %q: %w", name, err)
			}
		}
	}
	return ring, nil
}

// Deploy is POST /v1/deployments: CI reports what it deployed, in a DSSE
// envelope signed by a configured reporter's system key. The deployment
// is recorded under the artifact's digest; a deployment of a digest never
// released to that environment is recorded with an alert.
func (s *Server) Deploy(ctx context.Context, body []byte) (*writ.DeploymentResult, error) {
	if len(s.cfg.Deployments.Reporters) == 0 {
		return nil, writ.Errorf(writ.KindNotFound, "no_reporters", "this writ accepts no deployment reports (deployments.reporters in writ.yaml)")
	}
	ring, err := s.deployRing()
	if err != nil {
		return nil, err
	}
	o, err := trigger.Open(body, ring, trigger.OpenOptions{PayloadType: writ.DeploymentPayloadType, SSHNamespace: deploySSHNamespace, MaxPayload: 8 << 10})
	if err != nil {
		return nil, err
	}
	var rep writ.DeploymentReport
	if err := strictjson.Decode(o.Payload, &rep); err != nil {
		return nil, writ.Errorf(writ.KindInvalid, "invalid_report", "deployment report: %v", err)
	}
	if _, err := writ.ParseRunID(rep.ID); err != nil {
		return nil, writ.Errorf(writ.KindInvalid, "invalid_report", "deployment report id %q: want a ULID", rep.ID)
	}
	if !strings.HasPrefix(rep.Artifact, "sha256:") || len(rep.Artifact) != 71 || rep.Environment == "" || (rep.Result != "succeeded" && rep.Result != "failed") {
		return nil, writ.Errorf(writ.KindInvalid, "invalid_report", "a deployment report needs an id, an environment, an artifact sha256:<hex> and a result (succeeded or failed)")
	}
	if d := s.now().Sub(rep.ReportedAt); d > s.cfg.TriggerLeeway+5*time.Minute || d < -s.cfg.TriggerLeeway {
		return nil, writ.Errorf(writ.KindInvalid, "stale_report", "the report was made at %s, too far from now: sign a fresh one", rep.ReportedAt.UTC().Format(time.RFC3339))
	}
	if _, err := s.store.EntryByID(ctx, rep.ID); err == nil {
		return nil, writ.Errorf(writ.KindConflict, "replayed_report", "deployment report %s is already recorded", rep.ID)
	}
	released := false
	rels, err := s.store.ArtifactEntries(ctx, rep.Artifact, writ.EventRelease)
	if err != nil {
		return nil, err
	}
	for _, e := range rels {
		var ev struct {
			Details struct {
				Environment string `json:"environment"`
			} `json:"details"`
		}
		if json.Unmarshal(e.Body, &ev) == nil && ev.Details.Environment == rep.Environment {
			released = true
		}
	}
	actor := writ.SignerActor(o.Signer)
	ref := writ.ArtifactRef{Digest: rep.Artifact, Kind: writ.EventDeployment, Environment: rep.Environment}
	ev := &writ.Event{ID: rep.ID, Type: writ.EventDeployment, Actor: actor, Action: writ.ActionDeploy, Subject: rep.Artifact,
		Details: map[string]any{"environment": rep.Environment, "artifact": rep.Artifact, "result": rep.Result, "pipeline": rep.Pipeline,
			"reportedAt": rep.ReportedAt.UTC(), "keyId": o.KeyID, "released": released}}
	if err := s.store.AppendArtifactEvent(ctx, ev, ref); err != nil {
		if _, e := s.store.EntryByID(ctx, rep.ID); e == nil {
			return nil, writ.Errorf(writ.KindConflict, "replayed_report", "deployment report %s is already recorded", rep.ID)
		}
		return nil, err
	}
	res := &writ.DeploymentResult{ID: rep.ID, Reporter: o.Signer, Released: released}
	if !released {
		alert := &writ.Event{Type: writ.EventAlert, Actor: writ.ActorSystem, Subject: rep.Artifact, Details: map[string]any{
			"message":    fmt.Sprintf("%s reported deploying %s to %s, which writ never released there", o.Signer, rep.Artifact, rep.Environment),
			"deployment": rep.ID, "environment": rep.Environment, "artifact": rep.Artifact}}
		if err := s.store.AppendArtifactEvent(ctx, alert, ref); err != nil {
			return nil, err
		}
		res.Alert = true
		s.log.WarnContext(ctx, "deployment of an unreleased artifact", slog.String("artifact", rep.Artifact), slog.String("environment", rep.Environment),
			slog.String("reporter", o.Signer))
	}
	return res, nil
}

// DeploymentsConfig names the system signers whose deployment reports
// writ accepts.
type DeploymentsConfig struct {
	Reporters []string
}

func (c *Config) validateDeployments() error {
	for i, name := range c.Deployments.Reporters {
		j := slices.IndexFunc(c.Signers, func(sc SignerConfig) bool { return sc.Name == name })
		if j < 0 || c.Signers[j].Kind != writ.SignerSystem {
			return fmt.Errorf("deployments.reporters[%d] %q: want the name of a signer of kind system", i, name)
		}
	}
	return nil
}
