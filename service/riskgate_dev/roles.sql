-- The roles and the database the README asks a DBA to create, as utility statements: they take
-- no bind parameters, so each is a format() template the server quotes (%I names, %L literals).

-- name: create_role
CREATE ROLE %I;

-- name: owner_attributes
-- The schema owner runs the migrations. CREATEROLE only because migration 0001 creates
-- riskgate_app when it is missing (PostgreSQL checks the attribute before the name).
ALTER ROLE %I WITH LOGIN CREATEROLE NOSUPERUSER NOCREATEDB INHERIT PASSWORD %L;

-- name: app_role_attributes
ALTER ROLE %I WITH NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE;

-- name: app_login_attributes
-- The API's and the worker's login: nothing of its own, not even the app role's privileges
-- until its sessions SET ROLE riskgate_app (NOINHERIT), which is all it may ever switch to.
ALTER ROLE %I WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT PASSWORD %L;

-- name: grant_app_role
GRANT %I TO %I;

-- name: drop_database
DROP DATABASE IF EXISTS %I WITH (FORCE);

-- name: create_database
CREATE DATABASE %I OWNER %I;

-- name: database_owner
ALTER DATABASE %I OWNER TO %I;

-- name: revoke_public_create
-- A no-op from PostgreSQL 15 on; before it, anyone could create objects in schema public.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
