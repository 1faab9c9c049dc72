package trigger

import (
	"slices"
	"strings"
	"time"

	"github.com/writ-dev/writ"
)

// Limits of [Rules].
const (
	MaxLeeway          = 60 * time.Second
	DefaultMaxLifetime = 24 * time.Hour
)

// Error codes of [Rules.Check].
const (
	CodeIssuerMismatch         = "issuer_mismatch"
	CodeNotYetValid            = "trigger_not_yet_valid"
	CodeExpired                = "trigger_expired"
	CodeLifetimeTooLong        = "trigger_lifetime_too_long"
	CodeUnknownAgent           = "unknown_agent"
	CodeUnknownProfile         = "unknown_profile"
	CodeAgentDisabled          = "agent_disabled"
	CodeSignerNotAllowed       = "signer_not_allowed"
	CodeProfileNotAllowed      = "profile_not_allowed"
	CodeScopeTooBroad          = "scope_too_broad"
	CodeDurationExceedsProfile = "duration_exceeds_profile"
)

// Rules checks verified triggers against configuration. The maps are keyed
// by name and are only read; a Rules value is safe for concurrent use as
// long as nobody changes it.
type Rules struct {
	Signers  map[string]*writ.Signer
	Agents   map[string]*writ.Agent
	Profiles map[string]*writ.Profile
	// Leeway is the clock skew allowed on issuedAt and expiresAt. Zero or
	// less means MaxLeeway, and more than MaxLeeway is clamped to it.
	Leeway time.Duration
	// MaxLifetime caps expiresAt-issuedAt. Zero or less means
	// DefaultMaxLifetime.
	MaxLifetime time.Duration
}

func (r *Rules) leeway() time.Duration {
	if r.Leeway <= 0 || r.Leeway > MaxLeeway {
		return MaxLeeway
	}
	return r.Leeway
}

func (r *Rules) maxLifetime() time.Duration {
	if r.MaxLifetime <= 0 {
		return DefaultMaxLifetime
	}
	return r.MaxLifetime
}

// Check checks v against the configuration at time now (the server's
// clock). It returns nil or the first of these *writ.Error values:
//
//   - issuer_mismatch (KindUnauthenticated): the trigger's issuer is not the
//     signer whose key verified it;
//   - unknown_signer (KindUnauthenticated): the signer has a key but no
//     configuration;
//   - trigger_not_yet_valid (KindUnauthenticated): issuedAt > now+leeway;
//   - trigger_expired (KindUnauthenticated): now > expiresAt+leeway;
//   - trigger_lifetime_too_long (KindInvalid): expiresAt-issuedAt over
//     MaxLifetime;
//   - unknown_agent, unknown_profile (KindInvalid);
//   - agent_disabled (KindDenied);
//   - signer_not_allowed (KindDenied): the signer may not trigger this agent
//     or this profile;
//   - profile_not_allowed (KindDenied): the agent may not run under the
//     profile;
//   - scope_too_broad (KindDenied): Items lists every scope item outside the
//     agent's and profile's allowance (see [writ.Scope.Outside]);
//   - duration_exceeds_profile (KindDenied): scope.maxDuration over the
//     profile's MaxDuration.
//
// Check never narrows a scope: a trigger fits as signed, or is refused.
func (r *Rules) Check(v *Verified, now time.Time) error {
	t := &v.Trigger
	if t.Issuer != v.Signer {
		return writ.Errorf(writ.KindUnauthenticated, CodeIssuerMismatch, "the trigger names issuer %s but is signed with a key of signer %s; set issuer to the signer whose key signs it", quote(t.Issuer), v.Signer)
	}
	signer := r.Signers[v.Signer]
	if signer == nil {
		return writ.Errorf(writ.KindUnauthenticated, CodeUnknownSigner, "signer %s has a key but no configuration; add it under signers in the configuration", v.Signer)
	}
	leeway := r.leeway()
	if t.IssuedAt.After(now.Add(leeway)) {
		return writ.Errorf(writ.KindUnauthenticated, CodeNotYetValid, "the trigger is issued at %s, later than the server's time %s (leeway %s); check the signer's clock", t.IssuedAt.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339), leeway)
	}
	if now.After(t.ExpiresAt.Add(leeway)) {
		return writ.Errorf(writ.KindUnauthenticated, CodeExpired, "the trigger expired at %s (server time %s, leeway %s); sign a new trigger", t.ExpiresAt.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339), leeway)
	}
	if life, max := t.ExpiresAt.Sub(t.IssuedAt), r.maxLifetime(); life > max {
		return writ.Errorf(writ.KindInvalid, CodeLifetimeTooLong, "the trigger is valid for %s, longer than the limit of %s; sign one with an earlier expiresAt", life, max)
	}
	agent := r.Agents[t.Agent]
	if agent == nil {
		return writ.Errorf(writ.KindInvalid, CodeUnknownAgent, "agent %s is not configured", quote(t.Agent))
	}
	profile := r.Profiles[t.Profile]
	if profile == nil {
		return writ.Errorf(writ.KindInvalid, CodeUnknownProfile, "profile %s is not configured", quote(t.Profile))
	}
	if agent.Disabled {
		return writ.Errorf(writ.KindDenied, CodeAgentDisabled, "agent %s is disabled", agent.Name)
	}
	if !writ.MatchAnyName(signer.MayAgents, agent.Name) {
		return writ.Errorf(writ.KindDenied, CodeSignerNotAllowed, "signer %s may not trigger agent %s; ask an admin to add it to the signer's may.agents", signer.Name, agent.Name)
	}
	if !writ.MatchAnyName(signer.MayProfiles, profile.Name) {
		return writ.Errorf(writ.KindDenied, CodeSignerNotAllowed, "signer %s may not trigger profile %s; ask an admin to add it to the signer's may.profiles", signer.Name, profile.Name)
	}
	if !slices.Contains(agent.Profiles, profile.Name) {
		return writ.Errorf(writ.KindDenied, CodeProfileNotAllowed, "agent %s may not run under profile %s (its profiles: %s)", agent.Name, profile.Name, strings.Join(agent.Profiles, ", "))
	}
	if items := t.Scope.Outside(agent, profile); len(items) > 0 {
		e := writ.Errorf(writ.KindDenied, CodeScopeTooBroad, "the scope asks for %d item(s) outside what agent %s under profile %s allows: %s; remove them or ask an admin to widen the allowance", len(items), agent.Name, profile.Name, asciiSafe(strings.Join(items, ", ")))
		e.Items = items
		return e
	}
	if d := t.Scope.MaxDuration.D(); d > profile.MaxDuration {
		return writ.Errorf(writ.KindDenied, CodeDurationExceedsProfile, "scope.maxDuration %s is over profile %s's limit of %s", d, profile.Name, profile.MaxDuration)
	}
	return nil
}
