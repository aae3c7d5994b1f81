package embedded

import (
	"context"
	"testing"

	"github.com/kprobe/kprobe/pipeline/graphstore/storetest"
)

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T, prefix string) func() (storetest.Store, error) {
		dir := t.TempDir()
		return func() (storetest.Store, error) { return Open(context.Background(), dir, Options{}) }
	})
}
