package client

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// Every route the client calls is one the server serves: the routes named in this package's
// calls are looked up in http/routes.go, the one place the server declares them.
func TestClientRoutesAreServed(t *testing.T) {
	served := map[string]bool{}
	src, err := os.ReadFile(filepath.Join("..", "http", "routes.go"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`mux\.Handle\("([A-Z]+ [^"]+)"`).FindAllStringSubmatch(string(src), -1) {
		served[m[1]] = true
	}
	if len(served) < 20 {
		t.Fatalf("found only %d routes in http/routes.go", len(served))
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
		if !served[r] {
			t.Errorf("the client calls %q, which http/routes.go does not serve", r)
		}
	}
}
