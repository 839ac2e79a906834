// Command xcaddybuild turns xcaddy.json, the project's build manifest, into an
// xcaddy build: `go tool xcaddy build <caddy_version> --with <plugin>=<replace>
// … --output <output>`. xcaddy reads no config file of its own; `make build`
// runs this.
//
// Manifest fields:
//
//	caddy_version  the Caddy version to build, e.g. v2.11.9
//	plugins[]      module_path, version and, for a local checkout, replace (a
//	               path relative to the manifest)
//	output         the binary to write, relative to the manifest
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

type manifest struct {
	CaddyVersion string `json:"caddy_version"`
	Plugins      []struct {
		ModulePath string `json:"module_path"`
		Version    string `json:"version"`
		Replace    string `json:"replace"`
	} `json:"plugins"`
	Output string `json:"output"`
}

func main() {
	path := flag.String("manifest", "xcaddy.json", "the build manifest")
	dryRun := flag.Bool("n", false, "print the xcaddy command without running it")
	flag.Parse()
	args, err := buildArgs(*path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "xcaddybuild:", err)
		os.Exit(2)
	}
	fmt.Println("go " + strings.Join(args, " "))
	if *dryRun {
		return
	}
	cmd := exec.Command("go", args...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "xcaddybuild:", err)
		os.Exit(1)
	}
}

func buildArgs(path string) ([]string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var m manifest
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	if m.CaddyVersion == "" || m.Output == "" {
		return nil, fmt.Errorf("%s: caddy_version and output are required", path)
	}
	dir, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return nil, err
	}
	args := []string{"tool", "xcaddy", "build", m.CaddyVersion}
	for i, p := range m.Plugins {
		if p.ModulePath == "" {
			return nil, fmt.Errorf("%s: plugins[%d].module_path is required", path, i)
		}
		with := p.ModulePath
		if p.Version != "" {
			with += "@" + p.Version
		}
		if p.Replace != "" {
			with += "=" + filepath.Join(dir, p.Replace)
		}
		args = append(args, "--with", with)
	}
	return append(args, "--output", filepath.Join(dir, m.Output)), nil
}
