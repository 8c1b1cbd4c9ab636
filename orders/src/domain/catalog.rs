//! The articles on sale: the original's three, or `data/catalog.json` when it exists.

use std::{collections::HashMap, path::Path, sync::Arc};

use bus_schema::orders::Article;
use serde::Deserialize;

/// The catalogue, fixed for the life of the process.
#[derive(Debug, Clone)]
pub struct Catalog {
    articles: Vec<Article>,
    by_id: HashMap<u32, Arc<Article>>,
    by_name: HashMap<String, Arc<Article>>,
}

/// `catalog.json` is a list of articles, or an object with an `articles` list.
#[derive(Deserialize)]
#[serde(untagged)]
enum CatalogFile {
    List(Vec<Article>),
    Object { articles: Vec<Article> },
}

impl Catalog {
    /// The original demo's articles, priced in euro cents.
    pub fn original() -> Self {
        Self::new(vec![
            article(1, "Article 1", 1000),
            article(2, "Article 2", 2000),
            article(3, "Article 3", 3000),
        ])
        .expect("BUG: the built-in catalogue is valid")
    }

    /// The catalogue in `path`, or the original one when there is no such file. A file
    /// that cannot be read or is not a valid catalogue is an error naming the file.
    pub async fn load(path: &Path) -> Result<Self, String> {
        let text = match tokio::fs::read_to_string(path).await {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Self::original()),
            Err(err) => {
                return Err(format!(
                    "cannot read the catalogue {}: {err}",
                    path.display()
                ));
            }
        };
        let file: CatalogFile = serde_json::from_str(&text).map_err(|err| {
            format!(
                "the catalogue {} is not valid: {err} (expected [{{\"id\": 1, \"name\": \"...\", \"price\": 1000}}, ...])",
                path.display()
            )
        })?;
        let articles = match file {
            CatalogFile::List(articles) | CatalogFile::Object { articles } => articles,
        };
        Self::new(articles)
            .map_err(|err| format!("the catalogue {} is not valid: {err}", path.display()))
    }

    /// A catalogue of `articles`: at least one, unique ids and names, no empty name.
    pub fn new(mut articles: Vec<Article>) -> Result<Self, String> {
        if articles.is_empty() {
            return Err("it has no articles".into());
        }
        articles.sort_by_key(|a| a.id);
        let mut by_id = HashMap::new();
        let mut by_name = HashMap::new();
        for a in &articles {
            if a.name.trim().is_empty() {
                return Err(format!("article {} has no name", a.id));
            }
            let shared = Arc::new(a.clone());
            if by_id.insert(a.id, Arc::clone(&shared)).is_some() {
                return Err(format!("the id {} is used twice", a.id));
            }
            if by_name.insert(a.name.clone(), shared).is_some() {
                return Err(format!("the name {:?} is used twice", a.name));
            }
        }
        Ok(Self {
            articles,
            by_id,
            by_name,
        })
    }

    pub fn articles(&self) -> &[Article] {
        &self.articles
    }

    pub fn get(&self, id: u32) -> Option<&Arc<Article>> {
        self.by_id.get(&id)
    }

    pub fn by_name(&self, name: &str) -> Option<&Arc<Article>> {
        self.by_name.get(name)
    }
}

fn article(id: u32, name: &str, price: u32) -> Article {
    Article {
        id,
        name: name.to_owned(),
        price,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_original_catalogue_has_three_articles() {
        let catalog = Catalog::original();
        let names: Vec<&str> = catalog.articles().iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["Article 1", "Article 2", "Article 3"]);
        assert_eq!(catalog.get(2).map(|a| a.price), Some(2000));
    }

    #[test]
    fn duplicate_ids_and_empty_names_are_refused() {
        assert!(Catalog::new(vec![article(1, "a", 1), article(1, "b", 2)]).is_err());
        assert!(Catalog::new(vec![article(1, " ", 1)]).is_err());
        assert!(Catalog::new(vec![]).is_err());
    }

    #[tokio::test]
    async fn a_catalogue_file_replaces_the_original_and_a_bad_one_names_the_file() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("catalog.json");
        std::fs::write(
            &path,
            r#"{"articles":[{"id":7,"name":"Vélo","price":19900}]}"#,
        )
        .expect("write");
        let catalog = Catalog::load(&path).await.expect("valid");
        assert_eq!(catalog.get(7).map(|a| a.name.as_str()), Some("Vélo"));
        assert!(catalog.get(1).is_none());

        std::fs::write(&path, "[{\"id\": \"one\"}]").expect("write");
        let err = Catalog::load(&path).await.expect_err("invalid");
        assert!(err.contains("catalog.json"), "{err}");
    }
}
