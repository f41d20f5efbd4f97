mod delivery;
mod harness;
mod limits;
mod portal_access;
mod secure_send;
mod smtp_refusals;
