package signedurl

import (
	"bytes"
	"testing"
)

func TestKeyFileRoundTrip(t *testing.T) {
	random := bytes.Repeat([]byte{7}, KeyFileSize)
	s, err := FromKeyFile([]byte(KeyFile(random)))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.keys) != 1 || !bytes.Equal(s.keys[0].Key, random[:32]) || !bytes.Equal(s.keys[0].Salt, random[32:]) {
		t.Fatalf("read back %+v", s.keys)
	}
	if _, err := FromKeyFile([]byte("damaged")); err == nil {
		t.Fatal("a damaged key file was accepted")
	}
}
