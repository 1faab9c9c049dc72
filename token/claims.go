package token

import (
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"strings"
	"time"
)

// Claims are the claims of a JWT-SVID: the SPIFFE JWT-SVID profile (sub,
// aud, exp) plus the registered claims writ always sets and writ's own.
//
// Times are carried as whole seconds (NumericDate) and rounded down, so a
// token never outlives the Expiry it was given.
type Claims struct {
	Issuer string // iss: writ's publicURL
	// Subject is the run's SPIFFE ID (sub):
	// spiffe://<trust-domain>/agent/<agent>/run/<run-id>.
	Subject string
	// Audience is the one audience (aud) the token is for. It is serialized
	// as a JSON string, never an array.
	Audience  string
	IssuedAt  time.Time // iat
	NotBefore time.Time // nbf; the zero time leaves it out
	Expiry    time.Time // exp
	ID        string    // jti: 128 random bits, base64url; Mint fills it when empty

	// writ's claims.
	Run     string // "run": the run id
	Agent   string // "agent"
	Profile string // "profile"
	Ticket  string // "ticket", for example "jira:ENG-1"

	// JKT is the RFC 7638 thumbprint of the DPoP key the token is bound to
	// (cnf.jkt, RFC 9449 §6). Empty means the token is unbound (a bearer
	// token).
	JKT string
	// Act is the RFC 8693 actor chain of a delegated run; nil for a
	// top-level run.
	Act *Actor
}

// Actor is one link of an RFC 8693 act claim: {"sub": …, "act": {…}}. The
// outermost Actor is the current actor; each nested Act acted before it.
type Actor struct {
	Subject string
	Act     *Actor
}

// maxActDepth bounds the act chain, in Mint and in Verify.
const maxActDepth = 32

// wireActor is Actor on the wire.
type wireActor struct {
	Sub string     `json:"sub"`
	Act *wireActor `json:"act,omitempty"`
}

type confirmation struct {
	JKT string `json:"jkt"`
}

// mintClaims is what Mint encodes. Plain field types keep encoding/json on
// its fast path.
type mintClaims struct {
	Iss     string        `json:"iss"`
	Sub     string        `json:"sub"`
	Aud     string        `json:"aud"`
	Exp     int64         `json:"exp"`
	Nbf     *int64        `json:"nbf,omitempty"`
	Iat     int64         `json:"iat"`
	Jti     string        `json:"jti"`
	Run     string        `json:"run"`
	Agent   string        `json:"agent,omitempty"`
	Profile string        `json:"profile,omitempty"`
	Ticket  string        `json:"ticket,omitempty"`
	Cnf     *confirmation `json:"cnf,omitempty"`
	Act     *wireActor    `json:"act,omitempty"`
}

// parsedClaims is what Verify decodes. A nil pointer is an absent claim.
type parsedClaims struct {
	Iss     string        `json:"iss"`
	Sub     string        `json:"sub"`
	Aud     *audience     `json:"aud"`
	Exp     *numericDate  `json:"exp"`
	Nbf     *numericDate  `json:"nbf"`
	Iat     *numericDate  `json:"iat"`
	Jti     string        `json:"jti"`
	Run     string        `json:"run"`
	Agent   string        `json:"agent"`
	Profile string        `json:"profile"`
	Ticket  string        `json:"ticket"`
	Cnf     *confirmation `json:"cnf"`
	Act     *wireActor    `json:"act"`
}

// maxNumericDate is the last second of year 9999; later times are refused
// so that no arithmetic on them overflows.
const maxNumericDate = 253402300799

// numericDate is an RFC 7519 NumericDate: a JSON number of seconds since
// the epoch. A fraction is rounded down; a string, a negative number or a
// date past year 9999 is an error.
type numericDate int64

func (d *numericDate) UnmarshalJSON(b []byte) error {
	if len(b) == 0 || (b[0] != '-' && (b[0] < '0' || b[0] > '9')) {
		return errors.New("a NumericDate must be a JSON number")
	}
	if n, err := strconv.ParseInt(string(b), 10, 64); err == nil {
		if n < 0 || n > maxNumericDate {
			return errors.New("NumericDate out of range")
		}
		*d = numericDate(n)
		return nil
	}
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil || math.IsNaN(f) || f < 0 || f > maxNumericDate {
		return errors.New("NumericDate out of range")
	}
	*d = numericDate(math.Floor(f))
	return nil
}

func (d numericDate) time() time.Time { return time.Unix(int64(d), 0).UTC() }

// audience is the aud claim: a string, or an array of strings (RFC 7519
// §4.1.3). Anything else is an error.
type audience []string

func (a *audience) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*a = audience{s}
		return nil
	}
	if len(b) > 0 && b[0] == '[' {
		var l []string
		if err := json.Unmarshal(b, &l); err != nil {
			return err
		}
		*a = l
		return nil
	}
	return errors.New("aud must be a string or an array of strings")
}

// toWireActor converts an actor chain, checking its depth and that every
// link has a subject.
func toWireActor(a *Actor) (*wireActor, error) {
	if a == nil {
		return nil, nil
	}
	head := &wireActor{}
	w := head
	for depth := 1; ; depth++ {
		if depth > maxActDepth {
			return nil, errors.New("the act chain is deeper than " + strconv.Itoa(maxActDepth))
		}
		if a.Subject == "" {
			return nil, errors.New("an act link has an empty subject")
		}
		w.Sub = a.Subject
		if a.Act == nil {
			return head, nil
		}
		a = a.Act
		w.Act = &wireActor{}
		w = w.Act
	}
}

// fromWireActor is the inverse of toWireActor, with the same checks.
func fromWireActor(w *wireActor) (*Actor, error) {
	if w == nil {
		return nil, nil
	}
	head := &Actor{}
	a := head
	for depth := 1; ; depth++ {
		if depth > maxActDepth {
			return nil, errors.New("act chain too deep")
		}
		if w.Sub == "" {
			return nil, errors.New("act link without sub")
		}
		a.Subject = w.Sub
		if w.Act == nil {
			return head, nil
		}
		w = w.Act
		a.Act = &Actor{}
		a = a.Act
	}
}

// maxSPIFFEIDLen is the SPIFFE ID length limit (SPIFFE-ID §2.3 asks
// implementations to support 2048 bytes).
const maxSPIFFEIDLen = 2048

// validSPIFFEID reports whether s is a SPIFFE ID of a workload
// (SPIFFE-ID §2): "spiffe://", a trust domain of [a-z0-9._-], and a
// non-empty path of segments of [a-zA-Z0-9._-], none empty, "." or "..",
// with no trailing slash, query, fragment, port or user info.
func validSPIFFEID(s string) bool {
	if len(s) > maxSPIFFEIDLen {
		return false
	}
	rest, ok := strings.CutPrefix(s, "spiffe://")
	if !ok {
		return false
	}
	td, path, ok := strings.Cut(rest, "/")
	if !ok || td == "" || path == "" {
		return false
	}
	for i := 0; i < len(td); i++ {
		c := td[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
			return false
		}
	}
	for seg := range strings.SplitSeq(path, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return false
		}
		for i := 0; i < len(seg); i++ {
			c := seg[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}
