package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Headers of a callback.
const (
	HeaderSignature = "X-Imaged-Signature"
	HeaderDelivery  = "X-Imaged-Delivery"
	HeaderEvent     = "X-Imaged-Event"
	// The Standard Webhooks headers (standardwebhooks.com): the webhook id, the send time in
	// Unix seconds, and "v1,<base64 HMAC-SHA256 of id.timestamp.body>".
	HeaderWebhookID        = "webhook-id"
	HeaderWebhookTimestamp = "webhook-timestamp"
	HeaderWebhookSignature = "webhook-signature"
)

// DefaultTolerance is how old a signature Verify accepts.
const DefaultTolerance = 5 * time.Minute

// Sign returns the X-Imaged-Signature value of body sent at t.
func Sign(secret []byte, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac(secret, ts, "", body))
}

// SignStandard returns the webhook-signature value (Standard Webhooks) of body sent with id at t.
func SignStandard(secret []byte, id string, t time.Time, body []byte) string {
	return "v1," + base64.StdEncoding.EncodeToString(mac(secret, strconv.FormatInt(t.Unix(), 10), id, body))
}

// StandardSecret is the secret in the form Standard Webhooks libraries take ("whsec_" and the
// key in base64), for receivers that verify with one.
func StandardSecret(secret []byte) string {
	return "whsec_" + base64.StdEncoding.EncodeToString(secret)
}

// mac is HMAC-SHA256 over "<id>.<ts>.<body>", or "<ts>.<body>" without an id.
func mac(secret []byte, ts, id string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	if id != "" {
		m.Write([]byte(id + "."))
	}
	m.Write([]byte(ts))
	m.Write([]byte("."))
	m.Write(body)
	return m.Sum(nil)
}

// Verify checks an X-Imaged-Signature header against body: a v1 signature made with secret,
// at most tolerance old (DefaultTolerance when zero). Receivers written in Go can use it.
func Verify(secret []byte, header string, body []byte, tolerance time.Duration) error {
	var ts string
	var sigs []string
	for _, part := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			sigs = append(sigs, v)
		}
	}
	if len(sigs) == 0 {
		return errors.New("malformed signature header")
	}
	return check(ts, tolerance, hex.EncodeToString(mac(secret, ts, "", body)), sigs)
}

// VerifyStandard checks the Standard Webhooks headers of a request (id, timestamp, signature)
// against body, as the stock libraries do.
func VerifyStandard(secret []byte, id, timestamp, signature string, body []byte, tolerance time.Duration) error {
	var sigs []string
	for _, s := range strings.Fields(signature) {
		if v, ok := strings.CutPrefix(s, "v1,"); ok {
			sigs = append(sigs, v)
		}
	}
	if id == "" || len(sigs) == 0 {
		return errors.New("malformed webhook-id or webhook-signature header")
	}
	return check(timestamp, tolerance, base64.StdEncoding.EncodeToString(mac(secret, timestamp, id, body)), sigs)
}

func check(ts string, tolerance time.Duration, want string, sigs []string) error {
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return errors.New("malformed signature timestamp")
	}
	if age := time.Since(time.Unix(sec, 0)); age > tolerance || age < -tolerance {
		return fmt.Errorf("signature timestamp is %s off", age.Round(time.Second))
	}
	for _, s := range sigs {
		if hmac.Equal([]byte(s), []byte(want)) {
			return nil
		}
	}
	return errors.New("signature does not match")
}
