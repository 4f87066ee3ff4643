package agentbackend

// SecretPatterns are the paths DefaultPermissions and the other presets keep
// an agent away from: environment files, private keys and certificates
// stores, SSH, cloud and package-registry credentials, at any depth. The
// presets copy the list when they are called, so appending to it before
// calling one extends every preset made afterwards.
var SecretPatterns = []string{
	"**/.env", "**/.env.*", "**/.envrc",
	"**/*.pem", "**/*.key", "**/*.p12", "**/*.pfx", "**/*.jks", "**/*.keystore",
	"**/id_rsa*", "**/id_dsa*", "**/id_ecdsa*", "**/id_ed25519*",
	"**/.ssh/**", "**/.aws/**", "**/.gnupg/**", "**/.azure/**", "**/.kube/config",
	"**/.config/gcloud/**", "**/.docker/config.json",
	"**/.git/config", "**/.git-credentials", "**/.netrc", "**/.npmrc", "**/.pypirc", "**/.pgpass",
	"**/*.tfstate", "**/*.tfstate.backup",
}

// secretReason is the Reason of the rules made from SecretPatterns.
const secretReason = "secrets and credentials are off limits"

// secretRules returns deny rules for SecretPatterns.
func secretRules() []Rule {
	rules := make([]Rule, len(SecretPatterns))
	for i, p := range SecretPatterns {
		rules[i] = Rule{Pattern: p, Action: Deny, Reason: secretReason}
	}
	return rules
}

// withSecretsDenied sets every file access of p to deny SecretPatterns
// before its own rules.
func withSecretsDenied(p *Permissions) *Permissions {
	for _, a := range []Access{AccessRead, AccessList, AccessSearch, AccessWrite, AccessDelete} {
		pol := p.Policy(a)
		pol.Rules = append(secretRules(), pol.Rules...)
	}
	return p
}

// DefaultPermissions returns the everyday preset: every operation is
// allowed, except that the SecretPatterns cannot be read, listed, searched,
// written or deleted (and, as a speed bump, a command naming one of them
// is refused). Each call returns a fresh value to edit at will.
func DefaultPermissions() *Permissions { return withSecretsDenied(&Permissions{}) }

// ReadOnlyPermissions returns a preset for reviewers: reading, listing and
// searching are allowed (secrets excepted), while writing, deleting and
// running commands are denied.
func ReadOnlyPermissions() *Permissions {
	return withSecretsDenied(&Permissions{
		Write:  Policy{Default: Deny},
		Delete: Policy{Default: Deny},
		Exec:   Policy{Default: Deny},
	})
}

// StrictPermissions returns a preset for supervised agents: reading,
// listing and searching are allowed (secrets excepted), while every write,
// delete, command and host a command connects to (under an allow-list
// Network) asks the approver first. Set Approver (for example a
// TerminalApprover); without one every Ask is denied. Its network rule
// cannot apply where commands share a network nothing filters per scope
// (see Permissions): there a scope with this preset is refused until
// its Network policy allows everything (p.Network = Policy{}), which
// says that the backend's network is accepted as it is.
func StrictPermissions() *Permissions {
	return withSecretsDenied(&Permissions{
		Write:   Policy{Default: Ask},
		Delete:  Policy{Default: Ask},
		Exec:    Policy{Default: Ask},
		Network: Policy{Default: Ask},
	})
}

// PermissivePermissions returns a preset that allows everything, secrets
// included: the zero Permissions, spelled out for configurations that want
// to say so. Like no permissions at all it costs nothing: a layer whose
// policies allow everything is not checked.
func PermissivePermissions() *Permissions { return &Permissions{} }
