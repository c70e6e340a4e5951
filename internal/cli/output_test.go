package cli

import (
	"bytes"
	"os"
	"testing"
)

func TestColoursOnlyOnATerminal(t *testing.T) {
	if c := coloursFor(&bytes.Buffer{}); c.on || c.bad("error") != "error" {
		t.Fatal("a buffer got colour")
	}
	null, _ := os.Open(os.DevNull) // a character device, no terminal
	defer null.Close()
	if coloursFor(null).on {
		t.Fatal("/dev/null got colour")
	}
	if got := (colours{on: true}).severity("error"); got != "\033[1;31merror\033[0m" {
		t.Fatalf("%q", got)
	}
	if got := (colours{on: true}).severity("info"); got != "info" {
		t.Fatalf("%q", got)
	}
}
