package release

// SetAfterStep installs the crash hook: f runs after every crash-relevant
// step of Install, Activate and Prune, with the step's name.
func SetAfterStep(m *Manager, f func(step string)) { m.afterStep = f }
