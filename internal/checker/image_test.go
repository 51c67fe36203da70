package checker

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"cairn/internal/repo"
	"cairn/internal/repo/repotest"
)

// TestCheckImageSpans checks that check accepts chunk lists whose blobs hold
// the spans they are named at, and reports a list that names a blob at a chunk
// no span of that blob's length holds.
func TestCheckImageSpans(t *testing.T) {
	ctx := context.Background()
	const cs = 32 << 10
	for _, tc := range []struct {
		name  string
		sizes []int // per chunk: the length of the blob it names; 0 for a null chunk
		bad   int   // the chunk that fits no span, or -1
	}{
		{"spans fit", []int{2 * cs, 2 * cs, 0, cs}, -1},
		{"whole region", []int{4 * cs, 4 * cs, 4 * cs, 4 * cs}, -1},
		{"blob too short", []int{cs, cs + 100, 0, 0}, 1},
		{"blob too long", []int{0, 0, 8 * cs, 0}, 2},
		{"three chunks", []int{0, 0, 0, 3 * cs}, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := repotest.New(t)
			ids := make([]repo.ID, len(tc.sizes))
			for i, n := range tc.sizes {
				if n == 0 {
					continue
				}
				id, _, err := r.SaveBlob(ctx, repo.DataBlob, bytes.Repeat([]byte{byte(n % 251), 1}, n/2))
				if err != nil {
					t.Fatal(err)
				}
				ids[i] = id
			}
			list, err := r.SaveChunkList(ctx, ids)
			if err != nil {
				t.Fatal(err)
			}
			img := &repo.Image{Source: "disk.img", Size: 4 * cs, SectorSize: 512, Table: "none",
				Regions: []repo.ImageRegion{{Kind: "gap", Size: 4 * cs, ChunkSize: cs, Chunks: []repo.ID{list}}}}
			if _, err := r.SaveSnapshot(ctx, &repo.Snapshot{Kind: repo.KindImage, Time: time.Now(), Host: "h", Paths: []string{"disk.img"}, Image: img}); err != nil {
				t.Fatal(err)
			}
			res, err := Check(ctx, r, Options{ReadData: true})
			if err != nil {
				t.Fatal(err)
			}
			if tc.bad < 0 {
				if len(res.Problems) != 0 {
					t.Fatalf("problems in a sound image: %v", res.Problems)
				}
				return
			}
			var all []string
			listNamed, chunkNamed := false, false
			for _, p := range res.Problems {
				all = append(all, p.Error())
				if strings.HasPrefix(p.Object, "chunk list "+list.Short()) && strings.Contains(p.Err.Error(), "fits no span") {
					listNamed = true
				}
				for _, a := range p.Affected {
					if strings.Contains(a, fmt.Sprintf("(chunk %d names a blob that fits no span)", tc.bad)) {
						chunkNamed = true
					}
				}
			}
			if !listNamed || !chunkNamed {
				t.Fatalf("problems %q (affected: %v): want chunk list %s named for a blob that fits no span, and chunk %d affected", all, res.Problems, list.Short(), tc.bad)
			}
		})
	}
}
