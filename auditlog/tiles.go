package auditlog

import (
	"bytes"
	"context"
	"fmt"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/writ-dev/writ"
)

// TileHeight is the height of the tiles the log serves in the C2SP
// tlog-tiles layout: 8, so a full tile holds 256 hashes.
const TileHeight = 8

// TileWidth is the number of hashes (or entries) in a full tile.
const TileWidth = 1 << TileHeight

// TileData returns tile (level, n) of width hashes (1..256), as C2SP
// tlog-tiles serves it: the width hashes of tree level level×8, from index
// n×256, concatenated. The tile must lie within the latest signed
// checkpoint: a tile past it, or wider than the hashes that exist, is a
// *writ.Error of KindNotFound (a client asks for the partial width its
// checkpoint implies).
func (l *Log) TileData(ctx context.Context, level int, n int64, width int) ([]byte, error) {
	if level < 0 || level > 7 || n < 0 || width < 1 || width > TileWidth {
		return nil, writ.Errorf(writ.KindInvalid, "invalid_tile", "tile level %d, index %d, width %d is not a valid tile", level, n, width)
	}
	size, err := l.ensure(ctx, 0)
	if err != nil {
		return nil, err
	}
	// Hashes at tree level 8·level: one per complete 256^level leaves.
	have := size >> (TileHeight * level)
	if n*TileWidth+int64(width) > have {
		return nil, writ.Errorf(writ.KindNotFound, "tile_not_found", "tile %d/%d of width %d is not in the tree of %d entries", level, n, width, size)
	}
	t := tlog.Tile{H: TileHeight, L: level, N: n, W: width}
	latest := l.latestCheckpoint()
	var data []byte
	what := func() string { return "tile " + t.Path() }
	err = l.withFallback(ctx, what, func(r tlog.HashReader) error {
		var err error
		data, err = l.checkedTile(r, latest, t)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("audit log: tile %d/%d: %w", level, n, err)
	}
	return data, nil
}

// checkedTile reads tile t from r and authenticates it against the signed
// tree latest as a tlog client does (tlog.TileHashReader: the tile, the
// tiles above it and those of the tree's right edge must rebuild the
// signed root). Authenticated tiles are cached: a tile never changes for
// its width. A full tile whose parent tile is cached is authenticated
// against the parent's entry for it alone (its 256 hashes rebuild that
// entry): most requests read only the tile itself.
func (l *Log) checkedTile(r tlog.HashReader, latest Checkpoint, t tlog.Tile) ([]byte, error) {
	if d, ok := l.cachedTile(t); ok {
		return d, nil
	}
	if t.W == TileWidth {
		at := int(t.N % TileWidth) // the parent's entry for t
		if parent, ok := l.cachedTile(tlog.Tile{H: TileHeight, L: t.L + 1, N: t.N / TileWidth, W: at + 1}); ok {
			data, err := tlog.ReadTileData(t, r)
			if err != nil {
				return nil, err
			}
			// The tile's root, from its two halves (tlog.HashFromTile).
			lo := t.L * TileHeight
			left, err := tlog.HashFromTile(t, data, tlog.StoredHashIndex(lo+TileHeight-1, 2*t.N))
			if err != nil {
				return nil, err
			}
			right, err := tlog.HashFromTile(t, data, tlog.StoredHashIndex(lo+TileHeight-1, 2*t.N+1))
			if err != nil {
				return nil, err
			}
			if root := tlog.NodeHash(left, right); !bytes.Equal(root[:], parent[at*tlog.HashSize:(at+1)*tlog.HashSize]) {
				return nil, errProofCheck
			}
			l.saveTiles([]tlog.Tile{t}, [][]byte{data})
			return data, nil
		}
	}
	tr := &tileReader{l: l, r: r}
	// Reading the tile's last hash through a TileHashReader makes tlog
	// fetch and authenticate the tile (at the width latest implies, of
	// which t is a prefix) and every tile it needs to do so.
	x := tlog.StoredHashIndex(t.L*t.H, t.N<<t.H+int64(t.W)-1)
	if _, err := tlog.TileHashReader(tlog.Tree{N: latest.Size, Hash: latest.Root}, tr).ReadHashes([]int64{x}); err != nil {
		if tr.err != nil {
			return nil, tr.err
		}
		return nil, errProofCheck
	}
	for tile, d := range tr.saved {
		if tile.L == t.L && tile.N == t.N && tile.W >= t.W {
			return d[: t.W*tlog.HashSize : t.W*tlog.HashSize], nil
		}
	}
	return nil, errProofCheck // tlog authenticated no tile holding t
}

// cachedTile returns t from the authenticated tiles: the first t.W
// hashes of the widest one authenticated at its place (a narrower tile is
// a prefix of a wider one).
func (l *Log) cachedTile(t tlog.Tile) ([]byte, bool) {
	l.tree.tileMu.Lock()
	defer l.tree.tileMu.Unlock()
	d, ok := l.tree.tiles[tileAt{t.L, t.N}]
	if !ok || len(d) < t.W*tlog.HashSize {
		return nil, false
	}
	return d[: t.W*tlog.HashSize : t.W*tlog.HashSize], true
}

// tileAt is a tile's place: its level and index.
type tileAt struct {
	level int
	n     int64
}

// saveTiles caches authenticated tiles, keeping the widest of each place.
func (l *Log) saveTiles(tiles []tlog.Tile, data [][]byte) {
	t := &l.tree
	t.tileMu.Lock()
	defer t.tileMu.Unlock()
	if t.tiles == nil || len(t.tiles)+len(tiles) > maxCachedTiles {
		t.tiles = map[tileAt][]byte{}
	}
	for i, tile := range tiles {
		at := tileAt{tile.L, tile.N}
		if len(data[i]) > len(t.tiles[at]) {
			t.tiles[at] = data[i]
		}
	}
}

// tileReader is the tlog.TileReader of one checkedTile: tiles from the
// cache, or read from r with one ReadHashes for all of them.
type tileReader struct {
	l     *Log
	r     tlog.HashReader
	err   error // the read error, as opposed to a tile that did not check
	saved map[tlog.Tile][]byte
}

func (tr *tileReader) Height() int { return TileHeight }

func (tr *tileReader) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	var want []int64
	var missing []int
	for i, t := range tiles {
		if d, ok := tr.l.cachedTile(t); ok {
			out[i] = d
			continue
		}
		missing = append(missing, i)
		start := t.N << t.H
		for k := range int64(t.W) {
			want = append(want, tlog.StoredHashIndex(t.L*t.H, start+k))
		}
	}
	if len(want) == 0 {
		return out, nil
	}
	hs, err := tr.r.ReadHashes(want)
	if err != nil {
		tr.err = err
		return nil, err
	}
	for _, i := range missing {
		d := make([]byte, 0, tiles[i].W*tlog.HashSize)
		for _, h := range hs[:tiles[i].W] {
			d = append(d, h[:]...)
		}
		hs = hs[tiles[i].W:]
		out[i] = d
	}
	return out, nil
}

// SaveTiles is called with the tiles tlog authenticated.
func (tr *tileReader) SaveTiles(tiles []tlog.Tile, data [][]byte) {
	if tr.saved == nil {
		tr.saved = map[tlog.Tile][]byte{}
	}
	for i, tile := range tiles {
		tr.saved[tile] = data[i]
	}
	tr.l.saveTiles(tiles, data)
}
