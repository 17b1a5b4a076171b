package client

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	apihttp "github.com/imaged/imaged/http"
)

// Every route the client calls is in the API's contract: the routes named in this package's
// calls are looked up in the OpenAPI document the server serves (which its own tests hold to
// http/routes.go, route for route).
func TestClientRoutesAreServed(t *testing.T) {
	served := map[string]bool{}
	for path, item := range apihttp.OpenAPI("test", nil)["paths"].(map[string]any) {
		for method := range item.(map[string]any) {
			served[strings.ToUpper(method)+" "+path] = true
		}
	}
	if len(served) < 20 {
		t.Fatalf("found only %d routes in the OpenAPI document", len(served))
	}
	route := regexp.MustCompile(`^(GET|POST|PUT|DELETE) /[^ ]*$`)
	used := map[string]bool{}
	files, _ := filepath.Glob("*.go")
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING {
				if v, err := strconv.Unquote(lit.Value); err == nil && route.MatchString(v) {
					used[v] = true
				}
			}
			return true
		})
	}
	if len(used) < 15 {
		t.Fatalf("found only %d routes in the client's calls", len(used))
	}
	for r := range used {
		if !served[strings.ReplaceAll(r, "...}", "}")] {
			t.Errorf("the client calls %q, which the OpenAPI document does not describe", r)
		}
	}
}
