package server_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/google/go-cmp/cmp"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/client"
	"github.com/writ-dev/writ/server"
	"github.com/writ-dev/writ/token"
)

// downstream is a relying party's audience (Vault's JWT auth, say),
// configured as identity.audiences.
const downstream = "https://vault.example.org"

// kidOf returns the kid in a JWT's header.
func kidOf(t *testing.T, raw string) string {
	t.Helper()
	h, _, _ := strings.Cut(raw, ".")
	b, err := base64.RawURLEncoding.DecodeString(h)
	if err != nil {
		t.Fatal(err)
	}
	var hdr struct {
		Kid string `json:"kid"`
	}
	if err := json.Unmarshal(b, &hdr); err != nil {
		t.Fatal(err)
	}
	return hdr.Kid
}

// jwksKids fetches the server's JWKS as anyone can and returns its kids,
// sorted.
func jwksKids(t *testing.T, base string) []string {
	t.Helper()
	resp, err := http.Get(base + "/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("GET jwks.json: %d %s", resp.StatusCode, b)
	}
	if _, err := token.ParseJWKS(b); err != nil {
		t.Fatalf("the JWKS does not parse as a relying party reads it: %v", err)
	}
	var set struct {
		Keys []struct {
			Kid string `json:"kid"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(b, &set); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, k := range set.Keys {
		out = append(out, k.Kid)
	}
	slices.Sort(out)
	return out
}

// rp is a relying party that trusts writ through OIDC discovery only,
// with go-oidc: a client nobody here wrote.
func rp(t *testing.T, base, audience string) *oidc.IDTokenVerifier {
	t.Helper()
	p, err := oidc.NewProvider(context.Background(), base)
	if err != nil {
		t.Fatalf("OIDC discovery of %s: %v", base, err)
	}
	return p.Verifier(&oidc.Config{ClientID: audience, SupportedSigningAlgs: []string{oidc.ES256}})
}

// TestRelyingParty: a token minted by a running writ server verifies with
// go-oidc from the discovery URL alone, for the API audience and for a
// configured downstream one; go-oidc refuses it for any other audience,
// and refuses tokens of another issuer.
func TestRelyingParty(t *testing.T) {
	d := prepareDev(t)
	cfg := d.cfg
	cfg.Audiences = []string{downstream}
	r := start(t, cfg, server.Options{}, d.finish(t))
	ctx := context.Background()
	key, err := token.NewDPoPKey()
	if err != nil {
		t.Fatal(err)
	}
	run, err := client.New(r.url, "").StartRun(ctx, d.sign(t, time.Now(), nil), key)
	if err != nil {
		t.Fatal(err)
	}
	self := client.NewRun(r.url, run.Token, key)
	api := rp(t, r.url, r.url+"/v1")

	idt, err := api.Verify(ctx, run.Token)
	if err != nil {
		t.Fatalf("go-oidc refuses the run's token: %v", err)
	}
	wantSub := "spiffe://writ.dev.local/agent/refactor-bot/run/" + string(run.ID)
	if idt.Subject != wantSub || run.SPIFFEID != wantSub {
		t.Errorf("sub %q, run SPIFFE ID %q; want %q", idt.Subject, run.SPIFFEID, wantSub)
	}
	if idt.Issuer != r.url || !slices.Equal(idt.Audience, []string{r.url + "/v1"}) {
		t.Errorf("iss %q aud %q; want %q, [%s/v1]", idt.Issuer, idt.Audience, r.url, r.url)
	}
	if !idt.Expiry.Equal(run.TokenExpiresAt.Truncate(time.Second)) || idt.Expiry.Sub(idt.IssuedAt) != 15*time.Minute {
		t.Errorf("exp %v iat %v; want a 15-minute DPoP-bound token expiring at %v", idt.Expiry, idt.IssuedAt, run.TokenExpiresAt)
	}
	var claims struct {
		Run, Agent, Profile, Ticket string
		Cnf                         struct {
			JKT string `json:"jkt"`
		}
	}
	if err := idt.Claims(&claims); err != nil {
		t.Fatal(err)
	}
	jkt, _ := token.Thumbprint(&key.PublicKey)
	if claims.Run != string(run.ID) || claims.Agent != "refactor-bot" || claims.Profile != "refactor" || claims.Ticket != "jira:ENG-123" || claims.Cnf.JKT != jkt {
		t.Errorf("claims %+v", claims)
	}

	// A downstream token: accepted by its relying party only.
	down, err := self.MintToken(ctx, string(run.ID), downstream, false)
	if err != nil {
		t.Fatal(err)
	}
	vault := rp(t, r.url, downstream)
	dt, err := vault.Verify(ctx, down.Token)
	if err != nil {
		t.Fatalf("go-oidc refuses the downstream token: %v", err)
	}
	if dt.Subject != wantSub || dt.Expiry.Sub(dt.IssuedAt) > 5*time.Minute {
		t.Errorf("downstream token: sub %q, lifetime %v", dt.Subject, dt.Expiry.Sub(dt.IssuedAt))
	}
	if _, err := api.Verify(ctx, down.Token); err == nil {
		t.Error("the API's relying party accepts the downstream token")
	}
	if _, err := vault.Verify(ctx, run.Token); err == nil {
		t.Error("the downstream relying party accepts the API token")
	}

	// Tokens signed with writ's own identity key that name another issuer
	// or audience: the control, which names the right ones, verifies.
	keys, err := server.LoadKeys(cfg.Keys)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := token.NewSigner(keys.Identity)
	if err != nil {
		t.Fatal(err)
	}
	mint := func(iss, aud string) string {
		now := time.Now()
		raw, err := signer.Mint(&token.Claims{Issuer: iss, Subject: wantSub, Audience: aud, IssuedAt: now, Expiry: now.Add(5 * time.Minute), Run: string(run.ID)})
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	if _, err := api.Verify(ctx, mint(r.url, r.url+"/v1")); err != nil {
		t.Fatalf("control: a token of the right issuer and audience: %v", err)
	}
	if _, err := api.Verify(ctx, mint("https://evil.example", r.url+"/v1")); err == nil || !strings.Contains(err.Error(), "issued by a different provider") {
		t.Errorf("a token of another issuer: %v; want refused for its issuer", err)
	}
	if _, err := api.Verify(ctx, mint(r.url, "https://evil.example/v1")); err == nil || !strings.Contains(err.Error(), "audience") {
		t.Errorf("a token of another audience: %v; want refused for its audience", err)
	}

	// Another writ installation: its tokens are not this one's.
	d2 := prepareDev(t)
	r2 := start(t, d2.cfg, server.Options{}, nil)
	other, err := client.New(r2.url, "").StartRun(ctx, d2.sign(t, time.Now(), nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := api.Verify(ctx, other.Token); err == nil {
		t.Error("go-oidc accepts another writ server's token")
	}
	if _, err := client.New(r.url, other.Token).GetRun(ctx, string(other.ID)); writ.ErrorCode(err) != "unknown_kid" {
		t.Errorf("another server's token on this API: %v; want unknown_kid", err)
	}
}

// TestIdentityKeyRotation: an admin rotates the identity key; tokens
// signed before still verify through go-oidc (the old key stays in the
// JWKS), new tokens carry the new kid, the rotation is a key.rotated
// event, a non-admin may not rotate, and once the old key's 16 minutes are
// over (the server restarted with its clock moved on) it is gone.
func TestIdentityKeyRotation(t *testing.T) {
	d := prepareDev(t)
	bobLine, err := server.GenerateHumanKey(filepath.Join(d.env.Dir, "bob.key"), "bob@writ")
	if err != nil {
		t.Fatal(err)
	}
	cfg := d.cfg
	cfg.Signers = append(append([]server.SignerConfig(nil), cfg.Signers...), server.SignerConfig{
		Signer: writ.Signer{Name: "bob", Kind: writ.SignerHuman, Groups: []string{"maintainers"}, MayAgents: []string{"*"}, MayProfiles: []string{"refactor"}},
		Keys:   []string{bobLine},
	})
	r := start(t, cfg, server.Options{}, d.finish(t))
	ctx := context.Background()
	admin := client.New(r.url, d.env.Token)
	bobTok, err := admin.CreateToken(ctx, "bob", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	bob := client.New(r.url, bobTok.Token)
	key, err := token.NewDPoPKey()
	if err != nil {
		t.Fatal(err)
	}
	run, err := client.New(r.url, "").StartRun(ctx, d.sign(t, time.Now(), nil), key)
	if err != nil {
		t.Fatal(err)
	}
	self := client.NewRun(r.url, run.Token, key)
	oldKid := kidOf(t, run.Token)
	if diff := cmp.Diff([]string{oldKid}, jwksKids(t, r.url)); diff != "" {
		t.Fatalf("JWKS before rotation (-want +got):\n%s", diff)
	}
	cached := rp(t, r.url, r.url+"/v1")
	if _, err := cached.Verify(ctx, run.Token); err != nil {
		t.Fatal(err)
	}

	// Neither a non-admin nor a run may rotate.
	if _, err := bob.RotateKey(ctx, "identity"); writ.ErrorCode(err) != "admin_required" || writ.ErrorKind(err) != writ.KindDenied {
		t.Errorf("bob rotates: %v; want 403 admin_required", err)
	}
	if _, err := self.RotateKey(ctx, "identity"); writ.ErrorCode(err) != "human_only" || writ.ErrorKind(err) != writ.KindDenied {
		t.Errorf("a run rotates: %v; want 403 human_only", err)
	}
	if got := jwksKids(t, r.url); len(got) != 1 {
		t.Fatalf("refused rotations changed the JWKS: %v", got)
	}

	newKid, err := admin.RotateKey(ctx, "identity")
	if err != nil {
		t.Fatal(err)
	}
	if newKid == "" || newKid == oldKid {
		t.Fatalf("new kid %q, old %q", newKid, oldKid)
	}
	want := []string{oldKid, newKid}
	slices.Sort(want)
	if diff := cmp.Diff(want, jwksKids(t, r.url)); diff != "" {
		t.Errorf("JWKS after rotation (-want +got):\n%s", diff)
	}
	// The old token: through a fresh relying party (the old key is still
	// published, not just cached), the cached one, and writ itself.
	if _, err := rp(t, r.url, r.url+"/v1").Verify(ctx, run.Token); err != nil {
		t.Errorf("go-oidc, fresh, refuses the pre-rotation token: %v", err)
	}
	if _, err := cached.Verify(ctx, run.Token); err != nil {
		t.Errorf("go-oidc, cached, refuses the pre-rotation token: %v", err)
	}
	if _, err := self.GetRun(ctx, string(run.ID)); err != nil {
		t.Errorf("writ refuses the pre-rotation token: %v", err)
	}
	// New tokens carry the new kid, and a relying party that cached the old
	// JWKS picks the new key up.
	fresh, err := self.MintToken(ctx, string(run.ID), "", true)
	if err != nil {
		t.Fatal(err)
	}
	if k := kidOf(t, fresh.Token); k != newKid {
		t.Errorf("a token minted after rotation has kid %q; want %q", k, newKid)
	}
	if _, err := cached.Verify(ctx, fresh.Token); err != nil {
		t.Errorf("go-oidc refuses the post-rotation token: %v", err)
	}
	var rotated []writ.Event
	for _, e := range storeEvents(t, r.srv.Store()) {
		if e.Type == writ.EventKeyRotated && e.Actor != writ.ActorSystem {
			rotated = append(rotated, e)
		}
	}
	if len(rotated) != 1 || rotated[0].Actor != "human:dev" || rotated[0].Details["kid"] != newKid || rotated[0].Details["previous"] != oldKid {
		t.Errorf("key.rotated events by humans: %+v; want one by human:dev from %s to %s", rotated, oldKid, newKid)
	}
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}

	// 17 minutes later, on the same address (so the same issuer): only the
	// new key is published, and the old token verifies nowhere.
	later := cfg
	later.Listen, later.PublicURL = strings.TrimPrefix(r.url, "http://"), r.url
	r = start(t, later, server.Options{Now: func() time.Time { return time.Now().Add(17 * time.Minute) }}, nil)
	if diff := cmp.Diff([]string{newKid}, jwksKids(t, r.url)); diff != "" {
		t.Errorf("JWKS 17 minutes after rotation (-want +got):\n%s", diff)
	}
	rp2 := rp(t, r.url, r.url+"/v1")
	if _, err := rp2.Verify(ctx, run.Token); err == nil {
		t.Error("go-oidc still accepts the pre-rotation token once its key is gone")
	}
	if _, err := rp2.Verify(ctx, fresh.Token); err != nil {
		t.Errorf("go-oidc refuses the post-rotation token after the restart: %v", err)
	}
	if _, err := client.New(r.url, run.Token).GetRun(ctx, string(run.ID)); writ.ErrorCode(err) != "unknown_kid" {
		t.Errorf("the pre-rotation token on writ: %v; want unknown_kid", err)
	}
}
