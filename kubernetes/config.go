package kubernetes

import (
	"fmt"
	"os"

	"sigs.k8s.io/yaml"
)

// ParseConfig reads a Config from YAML or JSON, field names as in its JSON
// tags (those of the PodTemplate included); unknown fields are an error, so
// a misspelt setting cannot be silently dropped. REST, Safety and
// Background are not read: REST comes from the kubeconfig.
//
//	namespace: agents
//	workspaceDir: /workspace
//	template:
//	  image: python:3.13-slim
//	  runtimeClassName: gvisor
//	  resources: {limits: {cpu: "1", memory: 1Gi}}
//	  nodeSelector: {pool: sandboxes}
func ParseConfig(data []byte) (Config, error) {
	var cfg Config
	if err := yaml.UnmarshalStrict(data, &cfg); err != nil {
		return Config{}, configErr("kubernetes: %v", err)
	}
	if err := cfg.validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// LoadConfig reads a Config from the YAML or JSON file name (see
// ParseConfig).
func LoadConfig(name string) (Config, error) {
	data, err := os.ReadFile(name)
	if err != nil {
		return Config{}, configErr("kubernetes: %v", err)
	}
	cfg, err := ParseConfig(data)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", name, err)
	}
	return cfg, nil
}
