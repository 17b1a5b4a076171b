// Package onnx runs ONNX models on ONNX Runtime for the analysis ops (ocr, detect). It loads the
// runtime's shared library once per process, keeps a small pool of sessions per model file, and
// moves tensors in and out as plain Go float32 slices so callers never touch the runtime's types.
//
// Nothing is loaded until the first inference: a service without the models starts and serves
// everything else, and a missing library or model file is imaged.ENotInstalled with a message
// saying to run `make models`.
package onnx

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/imaged/imaged"
)

// LibraryFile is the name of the runtime's shared library inside the models directory, as
// scripts/models.sh places it.
const LibraryFile = "libonnxruntime.so.1"

// DefaultPoolSize is the number of sessions kept per model when Config.PoolSize is zero.
const DefaultPoolSize = 2

// Config says where the runtime and the models are.
type Config struct {
	// ModelsDir holds the library and the model files; DefaultModelsDir() where empty.
	ModelsDir string
	// LibraryPath overrides the shared library's path; ModelsDir/LibraryFile where empty.
	LibraryPath string
	// PoolSize is the number of sessions per model file; DefaultPoolSize where zero. Each session
	// uses one thread, so this bounds the inferences of one model that run at once.
	PoolSize int
}

// DefaultModelsDir is $IMAGED_MODELS_DIR, else ~/.cache/imaged/models (where `make models`
// puts the files).
func DefaultModelsDir() string {
	if d := os.Getenv("IMAGED_MODELS_DIR"); d != "" {
		return d
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return filepath.Join(".cache", "imaged", "models")
	}
	return filepath.Join(home, ".cache", "imaged", "models")
}

func (c Config) modelsDir() string {
	if c.ModelsDir != "" {
		return c.ModelsDir
	}
	return DefaultModelsDir()
}

func (c Config) libraryPath() string {
	if c.LibraryPath != "" {
		return c.LibraryPath
	}
	return filepath.Join(c.modelsDir(), LibraryFile)
}

func (c Config) poolSize() int {
	if c.PoolSize > 0 {
		return c.PoolSize
	}
	return DefaultPoolSize
}

// The runtime's environment is process-wide, so its loading is too. A failed load is not
// remembered: after `make models` the next request loads the library without a restart.
var (
	envMu     sync.Mutex
	envLoaded bool
	envPath   string
)

// loadLibrary loads the shared library at path and creates the runtime environment, once per
// process. Later calls with another path keep the first library and say so.
func loadLibrary(path string) error {
	envMu.Lock()
	defer envMu.Unlock()
	if envLoaded {
		if path != envPath {
			return imaged.Errorf(imaged.EInternal, "ONNX Runtime is already loaded from %s; cannot load %s too", envPath, path)
		}
		return nil
	}
	if _, err := os.Stat(path); err != nil {
		return notInstalled(err, "the ONNX Runtime library %s is missing", filepath.Base(path))
	}
	ort.SetSharedLibraryPath(path)
	if err := ort.InitializeEnvironment(ort.WithLogLevelError()); err != nil {
		return notInstalled(err, "the ONNX Runtime library %s could not be loaded", filepath.Base(path))
	}
	envLoaded, envPath = true, path
	return nil
}

// notInstalled is the error of a missing library or model: permanent (a task fails at once
// instead of being retried) and naming files by their base name only, never a server path.
func notInstalled(err error, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...) + "; an operator installs it with `make models`"
	return &imaged.Error{Code: imaged.ENotInstalled, Message: msg, Err: err}
}

// Runtime hands out one session pool per model file.
type Runtime struct {
	cfg   Config
	mu    sync.Mutex
	pools map[string]*Pool
}

// New returns a runtime for cfg. It loads nothing yet.
func New(cfg Config) *Runtime {
	return &Runtime{cfg: cfg, pools: map[string]*Pool{}}
}

// ModelPath is the path of a model file in the models directory.
func (r *Runtime) ModelPath(file string) string {
	if filepath.IsAbs(file) {
		return file
	}
	return filepath.Join(r.cfg.modelsDir(), file)
}

// Available reports whether the library and every named file are present, without loading
// anything; a nil error means a pool over them can be used. The error is EUnavailable.
func (r *Runtime) Available(files ...string) error {
	if _, err := os.Stat(r.cfg.libraryPath()); err != nil {
		return notInstalled(err, "the ONNX Runtime library %s is missing", filepath.Base(r.cfg.libraryPath()))
	}
	for _, f := range files {
		if _, err := os.Stat(r.ModelPath(f)); err != nil {
			return notInstalled(err, "the model file %s is missing", filepath.Base(r.ModelPath(f)))
		}
	}
	return nil
}

// Pool returns the session pool of a model file (a name in the models directory or an absolute
// path), with the model's input and output tensor names in the order Run takes and returns
// them. Sessions are created on first use; asking again for the same file returns the same pool.
func (r *Runtime) Pool(file string, inputs, outputs []string) *Pool {
	path := r.ModelPath(file)
	r.mu.Lock()
	defer r.mu.Unlock()
	if p, ok := r.pools[path]; ok {
		return p
	}
	lib := r.cfg.libraryPath()
	p := newPool(r.cfg.poolSize(), func() (*Session, error) {
		if err := loadLibrary(lib); err != nil {
			return nil, err
		}
		return NewSession(path, inputs, outputs)
	})
	r.pools[path] = p
	return p
}

// Close destroys every idle session of every pool.
func (r *Runtime) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var errs []error
	for _, p := range r.pools {
		errs = append(errs, p.Close())
	}
	return errors.Join(errs...)
}
