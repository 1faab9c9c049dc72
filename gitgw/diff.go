package gitgw

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"strings"

	"github.com/writ-dev/writ"
)

// Diff is the diff from base to head of a hosted repository, as an
// approver is shown it.
type Diff struct {
	// Text is the diff, cut at the limit asked for.
	Text []byte
	// Digest is the SHA-256 of the whole diff, computed exactly as the
	// merge's diff digest (the one a commit approval binds), so a view can
	// show whether what it shows is what is being approved.
	Digest    string
	Truncated bool
	// Commits are the commits from base to head, newest first (at most
	// 100); their messages are the agent's words.
	Commits []Commit
}

// Commit is one commit of a diff's range.
type Commit struct {
	SHA     string
	Message string
}

// Diff returns the diff of repository name from base to head (base ""
// is the empty tree: the first merge into an empty repository), with at
// most limit bytes of text. It is the same git invocation as the diff
// digest, so Text is a prefix of the bytes Digest covers.
func (g *Gateway) Diff(ctx context.Context, name, base, head string, limit int) (*Diff, error) {
	if !writ.ValidRepoName(name) || !g.exists(name) {
		return nil, writ.Errorf(writ.KindNotFound, "unknown_repo", "repository %q is not hosted by this writ", name)
	}
	if base == "" {
		base = emptyTree
	}
	if !isHexID(base) || !isHexID(head) {
		return nil, writ.Errorf(writ.KindInvalid, "invalid_commit", "base and head must be commit ids")
	}
	c := g.cmd(ctx, g.dir(name), nil, "diff", "--binary", "--full-index", "--no-renames", "--no-ext-diff", "--no-textconv", "--no-color", base, head, "--")
	h := sha256.New()
	text := &capWriter{n: limit}
	var stderr bytes.Buffer
	c.Stdout, c.Stderr = io.MultiWriter(h, text), &limitedWriter{w: &stderr, n: 4096}
	if err := c.Run(); err != nil {
		return nil, &gitError{args: c.Args[1:], err: err, stderr: stderr.String()}
	}
	d := &Diff{Text: text.b.Bytes(), Digest: "sha256:" + hex.EncodeToString(h.Sum(nil)), Truncated: text.cut}
	rng := base + ".." + head
	if base == emptyTree {
		rng = head
	}
	out, err := g.run(ctx, g.dir(name), nil, nil, "log", "-n", "100", "--no-color", "--format=%H%x00%B%x1e", rng, "--")
	if err != nil {
		return nil, err
	}
	for rec := range strings.SplitSeq(string(out), "\x1e") {
		sha, msg, ok := strings.Cut(strings.TrimLeft(rec, "\n"), "\x00")
		if ok && isHexID(sha) {
			d.Commits = append(d.Commits, Commit{SHA: sha, Message: strings.TrimRight(msg, "\n")})
		}
	}
	return d, nil
}

// capWriter keeps the first n bytes written and notes whether there were
// more.
type capWriter struct {
	b   bytes.Buffer
	n   int
	cut bool
}

func (c *capWriter) Write(p []byte) (int, error) {
	k := min(len(p), c.n-c.b.Len())
	if k > 0 {
		c.b.Write(p[:k])
	}
	if k < len(p) {
		c.cut = true
	}
	return len(p), nil
}
