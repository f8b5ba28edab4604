package taxonomy_test

import (
	"os"
	"testing"

	"github.com/coursekb/pipeline/local/emulators"
)

// TestMain shares one Firestore emulator among the package's tests: each
// test still calls emulators.ForTest, and works in a project of its own.
func TestMain(m *testing.M) {
	os.Exit(emulators.RunTests(m, emulators.Firestore))
}
