package client

import (
	"context"
	"encoding/json"
	"io"
	"mime/multipart"
	"os"
	"path/filepath"

	"github.com/imaged/imaged"
)

// File is an image sent with a request: its bytes and the name the server records.
type File struct {
	Name   string
	Reader io.Reader
}

// multipartBody streams a form: the file as the part "file" (when there is one) and the fields.
// The writer runs until the request has read it all or closed it.
func multipartBody(f *File, fields map[string]string) (io.Reader, string) {
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		err := func() error {
			for k, v := range fields {
				if v == "" {
					continue
				}
				if err := mw.WriteField(k, v); err != nil {
					return err
				}
			}
			if f != nil {
				name := f.Name
				if name == "" {
					name = "image"
				}
				part, err := mw.CreateFormFile("file", filepath.Base(name))
				if err != nil {
					return err
				}
				if _, err := io.Copy(part, f.Reader); err != nil {
					return err
				}
			}
			return mw.Close()
		}()
		pw.CloseWithError(err)
	}()
	return pr, mw.FormDataContentType()
}

// Upload stores an image (POST /v1/images) and returns its record.
func (c *Client) Upload(ctx context.Context, f File) (*imaged.Image, error) {
	body, ct := multipartBody(&f, nil)
	var img imaged.Image
	if err := c.call(ctx, request{route: "POST /v1/images", body: body, contentType: ct}, &img); err != nil {
		return nil, err
	}
	return &img, nil
}

// UploadFile uploads the file at path under its base name.
func (c *Client) UploadFile(ctx context.Context, path string) (*imaged.Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return c.Upload(ctx, File{Name: filepath.Base(path), Reader: f})
}

// Image returns an uploaded image's record (GET /v1/images/{id}).
func (c *Client) Image(ctx context.Context, id string) (*imaged.Image, error) {
	var img imaged.Image
	if err := c.call(ctx, request{route: "GET /v1/images/{id}", params: []string{id}}, &img); err != nil {
		return nil, err
	}
	return &img, nil
}

// ImageContent writes an uploaded image's bytes to w (GET /v1/images/{id}/content) and returns
// its content type.
func (c *Client) ImageContent(ctx context.Context, id string, w io.Writer) (string, error) {
	return c.download(ctx, request{route: "GET /v1/images/{id}/content", params: []string{id}}, w)
}

// DeleteImage deletes an image and the results made from it (DELETE /v1/images/{id}).
func (c *Client) DeleteImage(ctx context.Context, id string) error {
	return c.call(ctx, request{route: "DELETE /v1/images/{id}", params: []string{id}}, nil)
}

// download copies a binary answer to w and returns its content type.
func (c *Client) download(ctx context.Context, r request, w io.Writer) (string, error) {
	resp, cancel, err := c.do(ctx, r)
	if err != nil {
		return "", err
	}
	defer cancel()
	defer resp.Body.Close()
	if _, err := io.Copy(w, resp.Body); err != nil {
		return "", err
	}
	return resp.Header.Get("Content-Type"), nil
}

// opsJSON is a pipeline as the API takes it.
func opsJSON(ops []imaged.Op) (string, error) {
	if ops == nil {
		ops = []imaged.Op{}
	}
	b, err := json.Marshal(ops)
	return string(b), err
}
