package server_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/writ-dev/writ/auditlog"
	"github.com/writ-dev/writ/client"
	"github.com/writ-dev/writ/server"
)

// httpTiles is a tlog.TileReader over writ's C2SP tlog-tiles routes: the
// reader the Go checksum database client uses, which checks every tile
// against the signed tree head before trusting it.
type httpTiles struct {
	t     *testing.T
	url   string
	token string
}

func (h *httpTiles) Height() int { return auditlog.TileHeight }

func (h *httpTiles) get(path string) ([]byte, error) {
	req, _ := http.NewRequest(http.MethodGet, h.url+"/v1/audit/tlog/"+path, nil)
	req.Header.Set("Authorization", "Bearer "+h.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s %s", path, resp.Status, b)
	}
	return b, err
}

func (h *httpTiles) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, tile := range tiles {
		// x/mod writes tile/8/L/N; C2SP tlog-tiles drops the height.
		p := strings.Replace(tile.Path(), fmt.Sprintf("tile/%d/", auditlog.TileHeight), "tile/", 1)
		b, err := h.get(p)
		if err != nil {
			return nil, err
		}
		out[i] = b
	}
	return out, nil
}

func (h *httpTiles) SaveTiles([]tlog.Tile, [][]byte) {}

// TestTlogTiles verifies writ's log the way standard tlog tooling does:
// tiles fetched over HTTP and checked against the signed checkpoint by
// x/mod's TileHashReader, inclusion proofs built from them, entry bundles
// hashed to the tile's leaves.
func TestTlogTiles(t *testing.T) {
	d := prepareDev(t)
	r := start(t, d.cfg, server.Options{}, d.finish(t))
	ctx := context.Background()
	anon := client.New(r.url, "")
	for i := 0; i < 100; i++ { // 3 events each: past one full tile of 256
		if _, err := anon.StartRun(ctx, d.sign(t, time.Now(), nil), nil); err != nil {
			t.Fatal(err)
		}
	}
	human := client.New(r.url, d.env.Token)
	cpNote, err := human.AuditCheckpoint(ctx, 300)
	if err != nil {
		t.Fatal(err)
	}
	key, err := human.AuditKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(key)
	if err != nil {
		t.Fatal(err)
	}
	cp, err := auditlog.OpenCheckpoint(cpNote, v, v.Name())
	if err != nil {
		t.Fatal(err)
	}
	tree := tlog.Tree{N: cp.Size, Hash: cp.Root}
	tiles := &httpTiles{t: t, url: r.url, token: d.env.Token}
	hr := tlog.TileHashReader(tree, tiles)

	// Entry bundles: each entry's leaf hash must be what the level-0 tile
	// (checked against the root by TileHashReader) holds.
	for bundle := int64(0); bundle*256 < cp.Size; bundle++ {
		width := min(cp.Size-bundle*256, 256)
		path := tlog.Tile{H: 8, L: 0, N: bundle, W: int(width)}.Path()
		path = strings.Replace(path, "tile/8/0/", "tile/entries/", 1)
		data, err := tiles.get(path)
		if err != nil {
			t.Fatal(err)
		}
		for i := int64(0); i < width; i++ {
			if len(data) < 2 {
				t.Fatalf("bundle %d ends after %d entries; want %d", bundle, i, width)
			}
			n := int(binary.BigEndian.Uint16(data))
			body := data[2 : 2+n]
			data = data[2+n:]
			idx := bundle*256 + i
			leaf, err := hr.ReadHashes([]int64{tlog.StoredHashIndex(0, idx)})
			if err != nil {
				t.Fatalf("leaf %d through verified tiles: %v", idx, err)
			}
			if tlog.RecordHash(body) != leaf[0] {
				t.Fatalf("entry %d of the bundle does not hash to its leaf in the verified tile", idx)
			}
			proof, err := tlog.ProveRecord(cp.Size, idx, hr)
			if err != nil {
				t.Fatal(err)
			}
			if err := tlog.CheckRecord(proof, cp.Size, cp.Root, idx, leaf[0]); err != nil {
				t.Fatalf("inclusion of %d from tiles: %v", idx, err)
			}
		}
		if len(data) != 0 {
			t.Errorf("bundle %d has %d bytes after its %d entries", bundle, len(data), width)
		}
	}
	// A tile past the signed tree, or a full tile where only a partial one
	// exists, is not served.
	if _, err := tiles.get(fmt.Sprintf("tile/0/%03d", cp.Size/256+1)); err == nil {
		t.Error("a tile past the tree was served")
	}
	if _, err := tiles.get(fmt.Sprintf("tile/0/%03d", cp.Size/256)); err == nil {
		t.Error("a full tile was served where only a partial one exists")
	}
	for _, bad := range []string{"tile/0/1", "tile/0/x1/002", "tile/0/000.p/256", "tile/0/000.p/01", "tile/9/000", "tile/entries/abc"} {
		if _, err := tiles.get(bad); err == nil {
			t.Errorf("GET %s was served", bad)
		}
	}
}
