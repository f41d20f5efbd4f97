mod delivery;
mod dkim;
mod harness;
mod limits;
mod portal_access;
mod postfix;
mod secure_send;
mod smtp_refusals;
