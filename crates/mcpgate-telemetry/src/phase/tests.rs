use super::*;
use crate::note::step;

#[tokio::test]
async fn a_step_outside_the_layer_or_with_traces_off_costs_nothing() {
    // No exporter in unit tests: nothing is timed, inside the layer or not.
    let s = step(StepName::Policy);
    assert!(!s.is_timed());
    s.end(true, &[("mcpgate.reason", "x")]);
    let shared = std::sync::Arc::new(std::sync::Mutex::new(crate::note::Note::default()));
    crate::note::NOTE
        .scope(shared.clone(), async {
            let s = step(StepName::Authentication);
            assert!(!s.is_timed());
        })
        .await;
    assert!(crate::note::lock(&shared).phases.is_empty());
}

#[test]
fn a_hooks_attributes_are_kept_cleaned_and_in_order_four_at_most() {
    let h = HookAttrs::new(&[
        ("mcpgate.upstream", "echo"),
        ("mcpgate.policy.reason", "a\nb"),
        ("empty", ""),
        ("mcpgate.d", "é"),
        ("fifth", "left out"),
    ]);
    let got: Vec<_> = h.iter().collect();
    assert_eq!(
        got,
        [
            ("mcpgate.upstream", "echo"),
            ("mcpgate.policy.reason", "a?b"),
            ("empty", ""),
            ("mcpgate.d", "é"),
        ]
    );
    assert_eq!(HookAttrs::new(&[]).iter().count(), 0);
    let p = Phase {
        name: StepName::Policy,
        start: std::time::SystemTime::UNIX_EPOCH,
        end: std::time::SystemTime::UNIX_EPOCH,
        attrs: HookAttrs::new(&[("mcpgate.upstream", "echo")]),
        failed: true,
    };
    let mut room = [Attr::int("", 0); MAX_PHASE_ATTRS];
    assert_eq!(
        p.attributes(&[Attr::str("ignored", "for a policy step")], &mut room),
        [
            Attr::str("mcpgate.upstream", "echo"),
            Attr::str("mcpgate.outcome", "failed")
        ]
    );
}
