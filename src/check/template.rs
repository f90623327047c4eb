//! Templates in configuration (alert messages, custom_template panels) compiled the way the
//! engine will, each error placed at its line in the YAML file.

use crate::config::{Report, Step};

/// Compiles a template the way the engine will, mapping minijinja's line into the YAML file.
pub fn check_template(template: &str, first_line: usize, key: &[Step], r: &mut Report<'_>) {
    let env = crate::render::template_environment();
    if let Err(e) = env.template_from_str(template) {
        match e.line() {
            Some(line) => {
                let (_, column) = r.locator.locate(key);
                r.at_position(
                    first_line + line - 1,
                    column,
                    format!("template: {}", e.detail().unwrap_or("syntax error")),
                );
            }
            None => r.at(key, format!("template: {e}")),
        }
    }
}
