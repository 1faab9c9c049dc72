package main

import (
	"cmp"
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/writ-dev/writ/attest"
	"github.com/writ-dev/writ/auditlog"
)

// attestGetCommand is `writ attest get RUN`.
type attestGetCommand struct{ out string }

func (c *attestGetCommand) Flags(fs *flag.FlagSet) {
	fs.StringVar(&c.out, "o", "", "write here instead of stdout")
}

func (c *attestGetCommand) Run(ctx context.Context, e *env, args []string) error {
	if len(args) != 1 {
		return usagef("attest get takes one run id")
	}
	cl, err := newClient(e)
	if err != nil {
		return err
	}
	env, err := cl.RunAttestation(ctx, args[0])
	if err != nil {
		return err
	}
	if p := c.out; p != "" {
		return os.WriteFile(p, env, 0o644)
	}
	_, err = e.stdout.Write(append(env, '\n'))
	return err
}

// attestVerifyCommand is `writ attest verify FILE`: a run attestation with
// its log proof, or a build provenance or release attestation.
type attestVerifyCommand struct {
	key, logKey, origin string
	artifact, builderID string
	json                bool
}

func (c *attestVerifyCommand) Flags(fs *flag.FlagSet) {
	fs.StringVar(&c.key, "key", "", "the attest public key, a PEM file (default: fetched from the server)")
	fs.StringVar(&c.logKey, "log-key", "", "the audit log's public note key (default: fetched from the server)")
	fs.StringVar(&c.origin, "origin", "", "the audit log's origin (default: the log key's name)")
	fs.StringVar(&c.artifact, "artifact", "", "also check that this file is a subject of the attestation (its SHA-256)")
	fs.StringVar(&c.builderID, "builder-id", "", "for build provenance: the builder id to require (default: any, signed by the attest key)")
	fs.BoolVar(&c.json, "json", false, "print the verified statement as JSON")
}

func (c *attestVerifyCommand) Run(ctx context.Context, e *env, args []string) error {
	if len(args) != 1 {
		return usagef("attest verify takes one attestation file")
	}
	envBytes, err := os.ReadFile(args[0])
	if err != nil {
		return err
	}
	var pemKey []byte
	if c.key != "" {
		if pemKey, err = os.ReadFile(c.key); err != nil {
			return err
		}
	} else {
		cl, err := newClient(e)
		if err != nil {
			return err
		}
		if pemKey, err = cl.AttestKey(ctx); err != nil {
			return fmt.Errorf("fetching the attest key (or pass --key): %w", err)
		}
	}
	pub, err := attest.ParsePublicKey(pemKey)
	if err != nil {
		return err
	}
	st, _, err := attest.Verify(envBytes, pub)
	if err != nil {
		return err
	}
	if st.PredicateType != attest.PredicateRun {
		// Build provenance and release attestations carry no log proof.
		return c.verifyArtifactStatement(e, envBytes, pub, st)
	}
	logKey := c.logKey
	if logKey == "" {
		cl, err := newClient(e)
		if err != nil {
			return err
		}
		if logKey, err = cl.AuditKey(ctx); err != nil {
			return fmt.Errorf("fetching the log key (or pass --log-key): %w", err)
		}
	}
	st, p, err := attest.VerifyRun(envBytes, pub, func(lp *attest.LogProof) error {
		_, err := auditlog.CheckEntryProof([]byte(lp.Checkpoint), logKey, c.origin, lp.Index, lp.Entry, lp.Proof)
		return err
	})
	if err != nil {
		return err
	}
	if c.json {
		return printJSON(e.stdout, st)
	}
	w := p.Witnessed
	fmt.Fprintf(e.stdout, "verified: %s\n", st.PredicateType)
	fmt.Fprintf(e.stdout, "run %s (%s) — %s:%s — %s by %s\n", p.Run, w.Agent, w.Ticket.System, w.Ticket.ID, w.EndState, w.EndedBy)
	fmt.Fprintf(e.stdout, "trigger %s signed by %s\n", w.Trigger.Digest, w.Trigger.Signer)
	fmt.Fprintf(e.stdout, "actions: %d allowed, %d denied, %d needed approval; %d approvals, %d credentials, %d pushes, %d merges\n",
		w.Actions.Allowed, w.Actions.Denied, w.Actions.ApprovalRequired, len(w.Approvals), len(w.Credentials), len(w.Pushes), len(w.Merges))
	for _, s := range st.Subject {
		fmt.Fprintf(e.stdout, "subject %s %v\n", s.Name, s.Digest)
	}
	fmt.Fprintf(e.stdout, "end event: log index %d, in the signed checkpoint of size %d\n", p.LogProof.Index, p.LogProof.Size)
	return nil
}

// verifyArtifactStatement checks a build provenance or release
// attestation whose signature already verified: its predicate, and with
// --artifact that the file is one of its subjects.
func (c *attestVerifyCommand) verifyArtifactStatement(e *env, envBytes []byte, pub *ecdsa.PublicKey, st *attest.Statement) error {
	out := e.stdout
	if c.json {
		out = io.Discard
	}
	switch st.PredicateType {
	case attest.PredicateSLSAProvenance:
		_, p, err := attest.VerifyProvenance(envBytes, pub, cmp.Or(c.builderID, builderOf(envBytes)))
		if err != nil {
			return err
		}
		src := p.BuildDefinition.ExternalParameters.Source
		fmt.Fprintf(out, "verified: %s\nbuilt by %s from %s@%s with recipe %s (run %s, merge approval %s, sandbox %s)\n", st.PredicateType,
			p.RunDetails.Builder.ID, src.Repo, src.Commit, p.BuildDefinition.ExternalParameters.Recipe.Name,
			p.BuildDefinition.InternalParameters.Run, p.BuildDefinition.InternalParameters.MergeApproval, p.BuildDefinition.InternalParameters.Sandbox)
	case attest.PredicateRelease:
		fmt.Fprintf(out, "verified: %s\n", st.PredicateType)
	default:
		return fmt.Errorf("attestation of predicate type %q: not one writ makes for artifacts", st.PredicateType)
	}
	if c.artifact != "" {
		f, err := os.Open(c.artifact)
		if err != nil {
			return err
		}
		defer f.Close()
		h := sha256.New()
		if _, err := io.Copy(h, f); err != nil {
			return err
		}
		sum := hex.EncodeToString(h.Sum(nil))
		if !st.HasSubject("sha256", sum) {
			return fmt.Errorf("%s (sha256:%s) is not a subject of this attestation", c.artifact, sum)
		}
		fmt.Fprintf(out, "subject %s sha256:%s\n", c.artifact, sum)
	}
	if c.json {
		return printJSON(e.stdout, st)
	}
	for _, s := range st.Subject {
		fmt.Fprintf(out, "subject %s %v\n", s.Name, s.Digest)
	}
	return nil
}

// builderOf reads the builder id an (already signature-checked)
// provenance names, for when the caller requires none in particular.
func builderOf(envBytes []byte) string {
	var env struct {
		Payload []byte `json:"payload"`
	}
	var st struct {
		Predicate struct {
			RunDetails struct {
				Builder struct {
					ID string `json:"id"`
				} `json:"builder"`
			} `json:"runDetails"`
		} `json:"predicate"`
	}
	if json.Unmarshal(envBytes, &env) != nil || json.Unmarshal(env.Payload, &st) != nil {
		return ""
	}
	return st.Predicate.RunDetails.Builder.ID
}
