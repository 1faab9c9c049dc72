package server

import (
	"fmt"
	"slices"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/trigger"
)

// fileDeployments is the deployments section of writ.yaml.
type fileDeployments struct {
	// Reporters are the system signers (signers[].kind: system) whose
	// signed reports POST /v1/deployments accepts.
	Reporters []string `json:"reporters"`
}

// deployRing is the key ring of the configured deployment reporters; nil
// when there is none.
func (s *Server) deployRing() (*trigger.KeyRing, error) {
	if len(s.cfg.Deployments.Reporters) == 0 {
		return nil, nil
	}
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
