package signedurl

import (
	"encoding/hex"
	"fmt"
	"strings"
)

// FromHex returns the Signer of comma-separated hex keys and salts, as ParseKeys reads them.
func FromHex(keys, salts string) (*Signer, error) {
	ks, err := ParseKeys(keys, salts)
	if err != nil {
		return nil, err
	}
	return New(ks)
}

// KeyFileSize is the random bytes a key file is made of: a key and a salt of 32 bytes each.
const KeyFileSize = 64

// KeyFile returns the contents of a key file made of random (KeyFileSize bytes): the key and
// the salt in hex, "key:salt".
func KeyFile(random []byte) string {
	return fmt.Sprintf("%s:%s\n", hex.EncodeToString(random[:32]), hex.EncodeToString(random[32:]))
}

// FromKeyFile returns the Signer of a key file's contents, as KeyFile writes them.
func FromKeyFile(b []byte) (*Signer, error) {
	key, salt, _ := strings.Cut(strings.TrimSpace(string(b)), ":")
	return FromHex(key, salt)
}
