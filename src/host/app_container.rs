//! `app_container`: the app container's limits from the config
//! (`host.app_container`, usually filled from the Downward API).

use std::sync::Arc;

use opentelemetry::Value;

use super::read::{series1, HostError, Tally};
use super::{name, Collector};
use crate::config::AppContainer;
use crate::model::{Family, InstrumentKind, InstrumentSpec};

pub(crate) const MEM_LIMIT: &str = "k8s.container.memory.limit";
pub(crate) const CPU_LIMIT: &str = "k8s.container.cpu.limit";

pub(crate) struct AppContainerCollector {
    container: Value,
    memory_limit: Option<f64>,
    cpu_limit: Option<f64>,
    n_mem: Arc<str>,
    n_cpu: Arc<str>,
}

impl AppContainerCollector {
    pub(crate) fn new(app: &AppContainer) -> Self {
        AppContainerCollector {
            container: Value::from(Arc::<str>::from(app.name.as_str())),
            memory_limit: app.memory_limit,
            cpu_limit: app.cpu_limit,
            n_mem: name(MEM_LIMIT),
            n_cpu: name(CPU_LIMIT),
        }
    }
}

impl Collector for AppContainerCollector {
    fn name(&self) -> &'static str {
        "app_container"
    }

    fn specs(&self) -> Vec<InstrumentSpec> {
        vec![
            InstrumentSpec::new(
                MEM_LIMIT,
                InstrumentKind::UpDownCounter,
                "By",
                "Memory limit of the app container (from host.app_container).",
            ),
            InstrumentSpec::new(
                CPU_LIMIT,
                InstrumentKind::UpDownCounter,
                "{cpu}",
                "CPU limit of the app container in cores (from host.app_container).",
            ),
        ]
    }

    fn collect(&mut self, out: &mut Vec<Family>, _tally: &mut Tally) -> Result<(), HostError> {
        const KEY: &str = "k8s.container.name";
        if let Some(m) = self.memory_limit {
            out.push(Family {
                name: self.n_mem.clone(),
                series: vec![series1(KEY, self.container.clone(), m)],
            });
        }
        if let Some(c) = self.cpu_limit {
            out.push(Family {
                name: self.n_cpu.clone(),
                series: vec![series1(KEY, self.container.clone(), c)],
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_present_and_absent() {
        let mut c = AppContainerCollector::new(&AppContainer {
            name: "app".into(),
            memory_limit: Some(536870912.0),
            cpu_limit: None,
        });
        let mut out = Vec::new();
        c.collect(&mut out, &mut Tally::default()).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(&*out[0].name, MEM_LIMIT);
        assert_eq!(out[0].series[0].value, 536870912.0);
        assert_eq!(
            out[0].series[0].attributes[0].key.as_str(),
            "k8s.container.name"
        );
        assert_eq!(out[0].series[0].attributes[0].value.as_str(), "app");

        let mut c = AppContainerCollector::new(&AppContainer {
            name: "app".into(),
            memory_limit: None,
            cpu_limit: Some(0.25),
        });
        out.clear();
        c.collect(&mut out, &mut Tally::default()).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(&*out[0].name, CPU_LIMIT);
        assert_eq!(out[0].series[0].value, 0.25);
    }
}
