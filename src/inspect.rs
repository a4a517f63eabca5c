//! `dmheal inspect`: every layer's view of one volume, and the verdict on it.

use std::collections::BTreeMap;

use crate::context::OpContext;
use crate::error::Result;
use crate::facts::gather::{self, XapiSource};
use crate::facts::KernelSearch;
use crate::ids::{DmName, Target, Uuid};
use crate::results::Inspection;
use crate::xapi::XapiView;

impl OpContext {
    /// Facts and verdict for one name.
    pub fn inspect_name(&self, target: String, name: &DmName) -> Result<Inspection> {
        self.inspect_name_with(target, name, None)
    }

    /// `inspect_name`, with xapi's views of the VDIs already asked (`xapi_views`).
    pub fn inspect_name_with(
        &self,
        target: String,
        name: &DmName,
        xapi: Option<BTreeMap<Uuid, XapiView>>,
    ) -> Result<Inspection> {
        let source = match xapi {
            Some(views) => XapiSource::Asked(views),
            None => XapiSource::Session(&self.xapi),
        };
        let mut facts = gather::gather(
            &self.config,
            self.dm.as_ref(),
            source,
            std::slice::from_ref(name),
            KernelSearch::AllWhereOpen,
        )?;
        Ok(Inspection::new(target, facts.remove(0)))
    }

    pub fn inspect(&self, target: &Target) -> Result<Inspection> {
        let name = self.resolve(target)?;
        self.inspect_name(target.to_string(), &name)
    }
}
