//! The shared upstream HTTP layer used by every network source (retry, pacing, paging,
//! OAuth token cache). (being written)
