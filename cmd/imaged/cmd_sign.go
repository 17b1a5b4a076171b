package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/imaged/imaged"
	"github.com/imaged/imaged/config"
	"github.com/imaged/imaged/signedurl"
)

const signUsage = `usage: imaged sign [flags] PATH

PATH is the ops and the image id of a signed image URL, e.g.
  resize:w=800,h=600/convert:f=webp/IMAGE_ID
sign prints the URL path to serve it: /i/SIGNATURE/resize:w=800,h=600/convert:f=webp/IMAGE_ID
with the key of IMAGED_SIGNING_KEY (or the one generated into DATA_DIR).

sign signs for whatever image id it is given, whichever tenant owns it: holding the signing key
is the operator's power over every tenant. An image the pipeline lays on it (watermark:image=ID)
must be of the same tenant, or the URL answers 404.`

// signCommand runs `imaged sign PATH`.
func signCommand(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, rest, err := config.ParseWith("sign", args, getenv, nil)
	if err != nil {
		return withUsage(err, signUsage)
	}
	if len(rest) != 1 {
		fmt.Fprintln(stderr, signUsage)
		return errors.New("usage: imaged sign [flags] PATH")
	}
	signer, err := newSigner(cfg)
	if err != nil {
		return err
	}
	u := signer.URL(rest[0])
	_, path, _ := signedurl.Split(u)
	if _, err := signedurl.Parse(path); err != nil {
		return errors.New(imaged.ErrorMessage(err))
	}
	fmt.Fprintln(stdout, u)
	return nil
}

// withUsage puts a command's usage before its flags when err is a request for help.
func withUsage(err error, usage string) error {
	var help *config.Help
	if errors.As(err, &help) {
		return &config.Help{Text: usage + "\n\n" + help.Text}
	}
	return err
}
