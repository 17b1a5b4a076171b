package main

import (
	"os/exec"
	"strings"
	"testing"
)

// The binary itself refuses bad backend URLs at start-up, naming the setting.
func TestStartupFailsNamingBadURL(t *testing.T) {
	bin := imagedBinary(t)
	for setting, value := range map[string]string{
		"IMAGED_DATABASE_URL": "mysql://nope",
		"IMAGED_QUEUE_URL":    "carrier-pigeon://coop",
		"IMAGED_STORAGE_URL":  "ftp://old",
	} {
		cmd := exec.Command(bin, "serve")
		cmd.Env = []string{"IMAGED_DATA_DIR=" + t.TempDir(), "IMAGED_ADDR=127.0.0.1:0", setting + "=" + value}
		out, err := cmd.CombinedOutput()
		if err == nil {
			t.Fatalf("%s=%s: imaged started", setting, value)
		}
		if !strings.Contains(string(out), setting) {
			t.Fatalf("%s=%s: output does not name the setting:\n%s", setting, value, out)
		}
	}
}

func TestVersionCommand(t *testing.T) {
	out, err := exec.Command(imagedBinary(t), "version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "imaged ") {
		t.Fatalf("version: %v %s", err, out)
	}
}
