DROP TABLE newsletter_subscribers;
DROP TABLE projects;
