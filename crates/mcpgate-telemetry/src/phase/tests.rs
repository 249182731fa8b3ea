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
