package server

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/ssh"
	"golang.org/x/mod/sumdb/note"
)

// Keys holds the server's three private keys (docs/design.md §4.7). They never
// leave the server process: runs cannot reach them.
type Keys struct {
	Identity *ecdsa.PrivateKey // ES256, signs JWT-SVIDs
	Log      note.Signer       // Ed25519, signs audit checkpoints
	LogKey   string            // the note verifier key of Log, public
	Attest   *ecdsa.PrivateKey // ECDSA P-256, signs attestations and countersigns approvals
}

// String keeps key material out of logs and fmt output: only public names are shown.
func (k *Keys) String() string { return "server.Keys{log: " + k.Log.Name() + ", …redacted}" }

// GenerateKeys writes the three key files (0600) for trust domain td,
// refusing to overwrite an existing file.
func GenerateKeys(paths KeyPaths, td string) error {
	idKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	atKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	skey, _, err := note.GenerateKey(rand.Reader, td+"/audit")
	if err != nil {
		return err
	}
	idPEM, err := marshalPKCS8(idKey)
	if err != nil {
		return err
	}
	atPEM, err := marshalPKCS8(atKey)
	if err != nil {
		return err
	}
	for _, f := range []struct {
		path string
		data []byte
	}{{paths.Identity, idPEM}, {paths.Log, []byte(skey + "\n")}, {paths.Attest, atPEM}} {
		if err := writeSecretFile(f.path, f.data); err != nil {
			return err
		}
	}
	return nil
}

func marshalPKCS8(k crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// writeSecretFile creates path with mode 0600; it never overwrites.
func writeSecretFile(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s already exists; refusing to overwrite a key", path)
		}
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// LoadKeys reads the three key files. A key file readable by group or
// others is refused, as ssh refuses such private keys.
func LoadKeys(paths KeyPaths) (*Keys, error) {
	read := func(what, path string) ([]byte, error) {
		st, err := os.Stat(path)
		if err != nil {
			return nil, fmt.Errorf("%s key: %w (run `writ init` to create keys)", what, err)
		}
		if st.Mode().Perm()&0o077 != 0 {
			return nil, fmt.Errorf("%s key %s: permissions %#o are too open; run chmod 600 %s", what, path, st.Mode().Perm(), path)
		}
		return os.ReadFile(path)
	}
	var k Keys
	data, err := read("identity", paths.Identity)
	if err != nil {
		return nil, err
	}
	if k.Identity, err = parseP256(data); err != nil {
		return nil, fmt.Errorf("identity key %s: %w", paths.Identity, err)
	}
	if data, err = read("attest", paths.Attest); err != nil {
		return nil, err
	}
	if k.Attest, err = parseP256(data); err != nil {
		return nil, fmt.Errorf("attest key %s: %w", paths.Attest, err)
	}
	if data, err = read("log", paths.Log); err != nil {
		return nil, err
	}
	skey := strings.TrimSpace(string(data))
	if k.Log, err = note.NewSigner(skey); err != nil {
		return nil, fmt.Errorf("log key %s: want a note signer key (PRIVATE+KEY+…): %w", paths.Log, err)
	}
	if k.LogKey, err = verifierKey(skey); err != nil {
		return nil, fmt.Errorf("log key %s: %w", paths.Log, err)
	}
	return &k, nil
}

func parseP256(data []byte) (*ecdsa.PrivateKey, error) {
	b, _ := pem.Decode(data)
	if b == nil || b.Type != "PRIVATE KEY" {
		return nil, errors.New("want a PEM \"PRIVATE KEY\" (PKCS#8) block")
	}
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		return nil, err
	}
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok || ek.Curve != elliptic.P256() {
		return nil, errors.New("want an ECDSA P-256 key")
	}
	return ek, nil
}

// verifierKey derives the public note verifier key from a note signer key
// "PRIVATE+KEY+<name>+<hash>+<base64(alg||seed)>".
func verifierKey(skey string) (string, error) {
	parts := strings.SplitN(skey, "+", 5)
	if len(parts) != 5 || parts[0] != "PRIVATE" || parts[1] != "KEY" {
		return "", errors.New("malformed note signer key")
	}
	raw, err := base64.StdEncoding.DecodeString(parts[4])
	if err != nil || len(raw) != 1+ed25519.SeedSize || raw[0] != 1 {
		return "", errors.New("malformed note signer key: want an Ed25519 seed")
	}
	pub := ed25519.NewKeyFromSeed(raw[1:]).Public().(ed25519.PublicKey)
	return note.NewEd25519VerifierKey(parts[2], pub)
}

// GenerateHumanKey creates an Ed25519 key pair for a human: the private key
// in OpenSSH format at path (0600), usable by `writ trigger sign --key` and
// by `ssh-keygen -Y sign`, and the public key as an authorized_keys line at
// path+".pub". It returns the public line.
func GenerateHumanKey(path, comment string) (string, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", err
	}
	block, err := ssh.MarshalPrivateKey(priv, comment)
	if err != nil {
		return "", err
	}
	if err := writeSecretFile(path, pem.EncodeToMemory(block)); err != nil {
		return "", err
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		return "", err
	}
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sp))) + " " + comment
	if err := os.WriteFile(path+".pub", []byte(line+"\n"), 0o644); err != nil {
		return "", err
	}
	return line, nil
}
