package checker

import (
	"crypto/rand"
	"fmt"
	"testing"

	"cairn/internal/repo"
)

func TestSubsetCoversEveryPackOnce(t *testing.T) {
	ids := make([]repo.ID, 2000)
	for i := range ids {
		_, _ = rand.Read(ids[i][:])
	}
	count := map[repo.ID]int{}
	for n := 1; n <= 10; n++ {
		pick, err := Subset(fmt.Sprintf("%d/10", n))
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range ids {
			if pick(id) {
				count[id]++
			}
		}
	}
	for _, id := range ids {
		if count[id] != 1 {
			t.Fatalf("pack %s read %d times over 1/10 .. 10/10", id.Short(), count[id])
		}
	}
	pick, err := Subset("25%")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, id := range ids {
		if pick(id) {
			n++
		}
	}
	if n < 400 || n > 600 {
		t.Errorf("25%% picked %d of 2000 packs", n)
	}
	for _, bad := range []string{"0/10", "11/10", "1/0", "0%", "101%", "x", "1/2/3"} {
		if _, err := Subset(bad); err == nil {
			t.Errorf("Subset(%q) accepted", bad)
		}
	}
}
