//! The registry macro: from one line per provider it declares the provider's module (behind
//! its cargo feature), the [`Source`](super::Source) enum that dispatches polls, the list of
//! built types, and the [`Registry`](super::Registry) that validates each type's keys for the
//! configuration. Adding a provider is one line in `sources/mod.rs`'s `providers!` call.

/// `providers! { "okta" okta::OktaSource => Okta, … }`: feature (and module) name, the type
/// implementing [`Provider`](super::Provider), and the enum variant.
macro_rules! providers {
    ($($feature:literal $module:ident :: $ty:ident => $variant:ident),* $(,)?) => {
        $(
            #[cfg(feature = $feature)]
            pub mod $module;
        )*

        #[cfg(not(any($(feature = $feature),*)))]
        compile_error!("enable at least one source feature");

        /// A configured source, ready to poll. Long-lived: it may keep caches between polls.
        pub enum Source {
            $(
                #[cfg(feature = $feature)]
                $variant(Box<$module::$ty>),
            )*
        }

        /// Source types built into this binary.
        pub const TYPES: &[&str] = &[
            $(
                #[cfg(feature = $feature)]
                <$module::$ty as Provider>::TYPE,
            )*
        ];

        /// Each built provider's [`Provider::QUIET_LOG_TARGETS`].
        pub const QUIET_LOG_TARGETS: &[&[&str]] = &[
            $(
                #[cfg(feature = $feature)]
                <$module::$ty as Provider>::QUIET_LOG_TARGETS,
            )*
        ];

        /// Every source type the product has, built into this binary or not.
        pub const KNOWN_TYPES: &[&str] = &[$($feature),*];

        impl Source {
            /// Builds the source `cfg` describes (no I/O).
            pub fn build(cfg: &SourceConfig, deps: &Deps) -> Result<Source, SourceError> {
                $(
                    #[cfg(feature = $feature)]
                    if cfg.provider == <$module::$ty as Provider>::TYPE {
                        let settings = cfg
                            .settings::<<$module::$ty as Provider>::Config>()
                            .ok_or_else(|| SourceError::config(format!(
                                "source {}: settings are not those of a {} source",
                                cfg.name, cfg.provider
                            )))?;
                        let s = <$module::$ty as Provider>::build(cfg, settings, deps)?;
                        return Ok(Source::$variant(Box::new(s)));
                    }
                )*
                Err(SourceError::config(format!(
                    "source {}: type {:?} is not built into this binary",
                    cfg.name, cfg.provider
                )))
            }

            /// The `provider` label.
            pub fn provider(&self) -> &'static str {
                match self {
                    $(
                        #[cfg(feature = $feature)]
                        Source::$variant(_) => <$module::$ty as Provider>::TYPE,
                    )*
                }
            }

            /// Reads the provider once, pushing every account into `sink`.
            pub async fn poll(
                &self,
                ctx: &PollContext<'_>,
                sink: &mut dyn AccountSink,
            ) -> Result<PollOutput, SourceError> {
                match self {
                    $(
                        #[cfg(feature = $feature)]
                        Source::$variant(s) => s.poll(ctx, sink).await,
                    )*
                }
            }

            /// Whether this source has a sign-in event stream.
            pub fn has_activity(&self) -> bool {
                match self {
                    $(
                        #[cfg(feature = $feature)]
                        Source::$variant(_) => <$module::$ty as Provider>::ACTIVITY,
                    )*
                }
            }

            /// Reads the sign-in event stream (see [`Provider::activity`](super::Provider::activity)).
            pub async fn activity(
                &self,
                ctx: &ActivityContext<'_>,
                sink: &mut dyn crate::activity::event::EventSink,
            ) -> Result<ActivityOutput, SourceError> {
                match self {
                    $(
                        #[cfg(feature = $feature)]
                        Source::$variant(s) => s.activity(ctx, sink).await,
                    )*
                }
            }

            $(
                #[cfg(feature = $feature)]
                #[doc = concat!("The ", $feature, " source inside, if this is one (tests, benchmarks).")]
                #[allow(non_snake_case, unreachable_patterns)]
                pub fn $variant(&self) -> Option<&$module::$ty> {
                    match self {
                        Source::$variant(s) => Some(s),
                        _ => None,
                    }
                }
            )*
        }

        impl SourceTypes for Registry {
            fn types(&self) -> &[&'static str] {
                TYPES
            }
            fn known_types(&self) -> &[&'static str] {
                KNOWN_TYPES
            }
            fn validate(
                &self,
                ty: &str,
                keys: figment::value::Dict,
                v: &mut Validator<'_>,
            ) -> Option<ProviderSettings> {
                $(
                    #[cfg(feature = $feature)]
                    if ty == <$module::$ty as Provider>::TYPE {
                        let raw = crate::config::provider_keys::<<$module::$ty as Provider>::Raw>(ty, keys, v)?;
                        let c = <$module::$ty as Provider>::validate(raw, v)?;
                        return Some(std::sync::Arc::new(c));
                    }
                )*
                let _ = (keys, v);
                None
            }
            fn has_activity(&self, ty: &str) -> bool {
                $(
                    #[cfg(feature = $feature)]
                    if ty == <$module::$ty as Provider>::TYPE {
                        return <$module::$ty as Provider>::ACTIVITY;
                    }
                )*
                false
            }
            fn min_interval(&self, ty: &str) -> std::time::Duration {
                $(
                    #[cfg(feature = $feature)]
                    if ty == <$module::$ty as Provider>::TYPE {
                        return <$module::$ty as Provider>::MIN_INTERVAL;
                    }
                )*
                std::time::Duration::from_secs(30)
            }
        }
    };
}

pub(crate) use providers;
