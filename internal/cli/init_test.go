package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/trailkeeper/trailkeeper/internal/config"
)

func TestInitWritesAConfigThatLoads(t *testing.T) {
	path := filepath.Join(t.TempDir(), "trailkeeper.yaml")
	var out bytes.Buffer
	if code := Main([]string{"init", "--config", path}, strings.NewReader(""), &out, &out); code != 0 {
		t.Fatalf("init: %d %s", code, out.String())
	}
	if _, err := config.Load(path); err != nil {
		t.Fatalf("the written config does not load: %v", err)
	}
	os.WriteFile(path, []byte("mine"), 0o644)
	out.Reset()
	if code := Main([]string{"init", "--config", path}, strings.NewReader(""), &out, &out); code != 2 || !strings.Contains(out.String(), "--force") {
		t.Fatalf("init over an existing file: %d %s", code, out.String())
	}
	if data, _ := os.ReadFile(path); string(data) != "mine" {
		t.Fatal("init overwrote a file without --force")
	}
	if code := Main([]string{"init", "--config", path, "--force"}, strings.NewReader(""), &out, &out); code != 0 {
		t.Fatalf("init --force: %d", code)
	}
}

func TestUsageErrorsExit2(t *testing.T) {
	for _, args := range [][]string{{"plan", "--output", "yaml"}, {"frobnicate"}, {"verify", "--sample", "10"}, {"remove-source"}} {
		var out bytes.Buffer
		if code := Main(args, strings.NewReader(""), &out, &out); code != 2 {
			t.Errorf("%v: exit %d, want 2\n%s", args, code, out.String())
		}
	}
}
