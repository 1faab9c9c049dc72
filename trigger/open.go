package trigger

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"strings"

	"github.com/hiddeco/sshsig"
	"github.com/secure-systems-lab/go-securesystemslib/dsse"

	"github.com/writ-dev/writ"
	"github.com/writ-dev/writ/internal/strictjson"
)

// Wire formats, as in [Opened.Format].
const (
	FormatDSSE   = "dsse"
	FormatSSHSig = "sshsig"
)

// Error codes of [Open] and [Verify].
const (
	CodeMalformedEnvelope = "malformed_envelope"
	CodeUnknownSigner     = "unknown_signer"
	CodeBadSignature      = "bad_signature"
	CodeTooLarge          = "too_large"
	CodeInvalidTrigger    = "invalid_trigger"
)

// MaxTriggerPayload is the largest trigger payload [Verify] accepts.
const MaxTriggerPayload = 32 << 10

// OpenOptions say what [Open] accepts. Every field is required; for
// triggers they are [writ.TriggerPayloadType], [writ.TriggerSSHNS] and
// [MaxTriggerPayload].
type OpenOptions struct {
	PayloadType  string // the DSSE payloadType
	SSHNamespace string // the SSH signature namespace
	MaxPayload   int    // the largest payload, in bytes
}

// Opened is a payload whose signature verified.
type Opened struct {
	Payload []byte // the exact signed bytes
	Signer  string // the signer whose key verified
	KeyID   string // the fingerprint of that key
	Format  string // FormatDSSE or FormatSSHSig
}

// envelope is the union of the two wire forms; pointers tell a missing
// field from an empty one.
type envelope struct {
	PayloadType *string        `json:"payloadType"`
	Payload     *string        `json:"payload"`
	Signatures  *[]dsseSigWire `json:"signatures"`
	SSHSig      *string        `json:"sshsig"`
}

type dsseSigWire struct {
	KeyID string `json:"keyid"`
	Sig   string `json:"sig"`
}

// envelopeOverhead bounds what an envelope adds to its base64 payload: the
// JSON around it, the payload type and one signature.
const envelopeOverhead = 16 << 10

func malformed(format string, args ...any) error {
	return writ.Errorf(writ.KindInvalid, CodeMalformedEnvelope, format, args...)
}

// Open parses body as a DSSE envelope
// {"payloadType", "payload", "signatures": [{"keyid", "sig"}]} or as
// {"payload": "<base64>", "sshsig": "<armored SSH SIGNATURE>"}, decoded
// strictly, and verifies its one signature over the exact payload bytes with
// a key from ring. DSSE signatures cover dsse.PAE(payloadType, payload) and
// are found by keyid, which must be a key fingerprint in the ring; Ed25519
// signatures are the 64 raw bytes, ECDSA P-256 signatures ASN.1 DER over
// SHA-256. SSH signatures must carry opts.SSHNamespace and hash with sha256
// or sha512; their key is the one embedded in the signature, looked up by
// fingerprint.
//
// Errors are *writ.Error: malformed_envelope (KindInvalid), unknown_signer
// and bad_signature (KindUnauthenticated), too_large (KindTooLarge). Options
// left empty are a programming error (KindInternal).
func Open(body []byte, ring *KeyRing, opts OpenOptions) (*Opened, error) {
	if opts.PayloadType == "" || opts.SSHNamespace == "" || opts.MaxPayload <= 0 {
		return nil, writ.Errorf(writ.KindInternal, "internal", "trigger.Open: every OpenOptions field is required")
	}
	maxBody := base64.StdEncoding.EncodedLen(opts.MaxPayload) + envelopeOverhead
	if len(body) > maxBody {
		return nil, writ.Errorf(writ.KindTooLarge, CodeTooLarge, "the envelope is %d bytes, over the limit of %d; the payload may be at most %d bytes", len(body), maxBody, opts.MaxPayload)
	}
	var env envelope
	if err := strictjson.Decode(body, &env); err != nil {
		var se *strictjson.Error
		if errors.As(err, &se) {
			return nil, malformed("the envelope is not valid: %s at %s: %s; send a DSSE envelope {\"payloadType\", \"payload\", \"signatures\"} or {\"payload\", \"sshsig\"}", se.Code, clip(se.Path), asciiSafe(se.Msg))
		}
		return nil, malformed("the envelope is not valid JSON")
	}
	if env.Payload == nil {
		return nil, malformed("the envelope has no \"payload\"; send the base64 of the signed bytes in \"payload\"")
	}
	switch {
	case env.SSHSig != nil && env.PayloadType == nil && env.Signatures == nil:
		return openSSH(&env, ring, opts)
	case env.SSHSig == nil && env.PayloadType != nil && env.Signatures != nil:
		return openDSSE(&env, ring, opts)
	case env.SSHSig != nil:
		return nil, malformed("the envelope mixes the SSH form (\"sshsig\") with DSSE fields (\"payloadType\", \"signatures\"); send one form")
	default:
		return nil, malformed("the envelope needs \"payloadType\" and \"signatures\" (DSSE) or \"sshsig\" (SSH signature)")
	}
}

func decodePayload(s string, opts OpenOptions) ([]byte, error) {
	if base64.StdEncoding.DecodedLen(len(s)) > opts.MaxPayload+3 {
		return nil, writ.Errorf(writ.KindTooLarge, CodeTooLarge, "the payload is over the limit of %d bytes", opts.MaxPayload)
	}
	p, err := decodeBase64(s)
	if err != nil {
		return nil, malformed("\"payload\" is not valid base64; encode the signed bytes with standard base64 and padding")
	}
	if len(p) > opts.MaxPayload {
		return nil, writ.Errorf(writ.KindTooLarge, CodeTooLarge, "the payload is %d bytes, over the limit of %d", len(p), opts.MaxPayload)
	}
	return p, nil
}

// decodeBase64 decodes padded standard or URL-safe base64 (as DSSE allows),
// refusing the line breaks and non-canonical final bits Go's decoder would
// otherwise let through.
func decodeBase64(s string) ([]byte, error) {
	enc := base64.StdEncoding
	if strings.ContainsAny(s, "-_") {
		enc = base64.URLEncoding
	}
	if strings.ContainsAny(s, "\r\n") {
		return nil, errors.New("line break in base64")
	}
	return enc.Strict().DecodeString(s)
}

func openDSSE(env *envelope, ring *KeyRing, opts OpenOptions) (*Opened, error) {
	if *env.PayloadType != opts.PayloadType {
		return nil, malformed("payloadType %s is not %q; sign the payload as %q", quote(*env.PayloadType), opts.PayloadType, opts.PayloadType)
	}
	payload, err := decodePayload(*env.Payload, opts)
	if err != nil {
		return nil, err
	}
	sigs := *env.Signatures
	if len(sigs) != 1 {
		return nil, malformed("the envelope has %d signatures; send exactly one", len(sigs))
	}
	s := sigs[0]
	if s.KeyID == "" {
		return nil, malformed("the signature has no \"keyid\"; set it to the key's fingerprint as ssh-keygen -l prints it (\"SHA256:…\")")
	}
	sig, err := decodeBase64(s.Sig)
	if err != nil || len(sig) == 0 {
		return nil, malformed("the signature's \"sig\" is not valid base64")
	}
	rk, ok := ring.lookup(s.KeyID)
	if !ok {
		return nil, writ.Errorf(writ.KindUnauthenticated, CodeUnknownSigner, "no configured signer has the key %s; sign with a key listed under a signer in the configuration, and set keyid to its fingerprint (ssh-keygen -l)", quote(s.KeyID))
	}
	pae := dsse.PAE(*env.PayloadType, payload)
	var good bool
	switch k := rk.crypto.(type) {
	case ed25519.PublicKey:
		good = len(sig) == ed25519.SignatureSize && ed25519.Verify(k, pae, sig)
	case *ecdsa.PublicKey:
		h := sha256.Sum256(pae)
		good = ecdsa.VerifyASN1(k, h[:], sig)
	}
	if !good {
		return nil, badSignature()
	}
	return &Opened{Payload: payload, Signer: rk.signer, KeyID: s.KeyID, Format: FormatDSSE}, nil
}

func badSignature() error {
	// The signer's name stays out of the message: the caller is not
	// authenticated, and a key's owner is not theirs to learn.
	return writ.Errorf(writ.KindUnauthenticated, CodeBadSignature, "the signature does not verify over the payload with the key it names; sign the exact payload bytes again (DSSE over PAE(payloadType, payload); ECDSA as ASN.1 DER)")
}

func openSSH(env *envelope, ring *KeyRing, opts OpenOptions) (*Opened, error) {
	payload, err := decodePayload(*env.Payload, opts)
	if err != nil {
		return nil, err
	}
	armored := []byte(*env.SSHSig)
	const begin = "-----BEGIN " + sshsig.PEMType + "-----"
	if !bytes.HasPrefix(bytes.TrimLeft(armored, " \t\r\n"), []byte(begin)) {
		return nil, malformed("\"sshsig\" is not an armored SSH signature; send the output of ssh-keygen -Y sign (\"%s\" …)", begin)
	}
	block, rest := pem.Decode(armored)
	if block == nil || block.Type != sshsig.PEMType || len(block.Headers) != 0 {
		return nil, malformed("\"sshsig\" is not a valid armored SSH signature; send the output of ssh-keygen -Y sign unchanged")
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, malformed("\"sshsig\" has data after the signature; send exactly one signature")
	}
	sig, err := sshsig.ParseSignature(block.Bytes)
	if err != nil {
		return nil, malformed("\"sshsig\" does not parse as an SSH signature (version 1, hash sha256 or sha512); send the output of ssh-keygen -Y sign unchanged")
	}
	if sig.Namespace != opts.SSHNamespace {
		return nil, malformed("the SSH signature's namespace is %s, not %q; sign with ssh-keygen -Y sign -n %s", quote(sig.Namespace), opts.SSHNamespace, opts.SSHNamespace)
	}
	fp := fingerprintSSH(sig)
	rk, ok := ring.lookup(fp)
	if !ok {
		return nil, writ.Errorf(writ.KindUnauthenticated, CodeUnknownSigner, "no configured signer has the key %s; sign with a key listed under a signer in the configuration", fp)
	}
	if err := sshsig.Verify(bytes.NewReader(payload), sig, rk.ssh, sig.HashAlgorithm, opts.SSHNamespace); err != nil {
		return nil, badSignature()
	}
	return &Opened{Payload: payload, Signer: rk.signer, KeyID: fp, Format: FormatSSHSig}, nil
}

func fingerprintSSH(sig *sshsig.Signature) string {
	fp, _ := Fingerprint(sig.PublicKey)
	return fp
}
