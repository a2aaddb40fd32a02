// Package health runs ciclo's Argo CD health scripts (manifests/argocd/health) the way
// Argo CD runs a health script from argocd-cm, so their tests say what Argo CD will show.
package health

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	lua "github.com/yuin/gopher-lua"
	"sigs.k8s.io/yaml"
)

// Status is what a health script returns: one of Argo CD's health codes and a message.
type Status struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

// The codes Argo CD accepts from a script; it shows any other as Unknown.
var codes = map[string]bool{
	"Healthy": true, "Progressing": true, "Degraded": true,
	"Suspended": true, "Missing": true, "Unknown": true,
}

// Argo CD stops a script after a second.
const timeout = time.Second

// Evaluate runs script with the object (YAML or JSON, as the API server returns it) as the
// global `obj`, in the sandbox Argo CD gives scripts configured in argocd-cm: the package,
// base and table libraries (no string, math or io), so a script that passes here cannot
// lean on a library Argo CD withholds. Argo CD also opens a safe part of os (time, date);
// ciclo's scripts need no clock, so it stays out here, which is only stricter.
func Evaluate(script string, object []byte) (Status, error) {
	asJSON, err := yaml.YAMLToJSON(object)
	if err != nil {
		return Status{}, fmt.Errorf("reading the object: %w", err)
	}
	var value any
	if err := json.Unmarshal(asJSON, &value); err != nil {
		return Status{}, fmt.Errorf("reading the object: %w", err)
	}

	L := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer L.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
	} {
		if err := L.CallByParam(lua.P{Fn: L.NewFunction(lib.open), Protect: true}, lua.LString(lib.name)); err != nil {
			return Status{}, fmt.Errorf("opening %s: %w", lib.name, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	L.SetContext(ctx)
	L.SetGlobal("obj", toLua(L, value))

	if err := L.DoString(script); err != nil {
		return Status{}, err
	}
	table, ok := L.Get(-1).(*lua.LTable)
	if !ok {
		return Status{}, fmt.Errorf("the script returned %s, not a table", L.Get(-1).Type())
	}
	status, ok1 := table.RawGetString("status").(lua.LString)
	message, ok2 := table.RawGetString("message").(lua.LString)
	if !ok1 || !ok2 {
		return Status{}, fmt.Errorf("the script returned status %v and message %v, not two strings",
			table.RawGetString("status"), table.RawGetString("message"))
	}
	if !codes[string(status)] {
		return Status{}, fmt.Errorf("the script returned %q, which Argo CD shows as Unknown", status)
	}
	return Status{Status: string(status), Message: string(message)}, nil
}

// toLua converts decoded JSON as Argo CD does: objects and arrays become tables, numbers
// Lua numbers, null nil.
func toLua(L *lua.LState, v any) lua.LValue {
	switch v := v.(type) {
	case map[string]any:
		t := L.CreateTable(0, len(v))
		for k, x := range v {
			t.RawSetString(k, toLua(L, x))
		}
		return t
	case []any:
		t := L.CreateTable(len(v), 0)
		for _, x := range v {
			t.Append(toLua(L, x))
		}
		return t
	case string:
		return lua.LString(v)
	case float64:
		return lua.LNumber(v)
	case bool:
		return lua.LBool(v)
	}
	return lua.LNil
}
